//! `scepd db migrate` and `scepd store copy`: work on a store directly (not through a server).

use clap::Subcommand;

use crate::store::{StoreError, StoreItem, StoreLocation};

#[derive(Subcommand)]
pub enum DbCommand {
    /// Applies the store's schema migrations (`scepd serve` also does at start); safe while
    /// other nodes start or run.
    Migrate {
        /// `postgres://USER@HOST/DB` (or `redb:DIR`).
        #[arg(long, env = "SCEPD_STORE", hide_env_values = true)]
        store: String,
    },
}

#[derive(Subcommand)]
pub enum StoreCommand {
    /// Copies a whole store into an empty one (stop the servers using the source first).
    Copy {
        /// `redb:DIR` (a data directory) or `postgres://USER@HOST/DB`.
        #[arg(long)]
        from: String,
        /// `redb:DIR` or `postgres://USER@HOST/DB`; must be empty.
        #[arg(long)]
        to: String,
    },
}

/// Items written per target transaction.
const COPY_BATCH: usize = 1000;
/// A command makes one transaction at a time.
const CLI_POOL_SIZE: u32 = 2;

pub fn db(command: DbCommand) -> Result<(), Box<dyn std::error::Error>> {
    let DbCommand::Migrate { store } = command;
    let location = StoreLocation::parse(&store)?;
    location.open(CLI_POOL_SIZE)?;
    println!("{location}: schema up to date");
    Ok(())
}

pub fn store(command: StoreCommand) -> Result<(), Box<dyn std::error::Error>> {
    let StoreCommand::Copy { from, to } = command;
    let (from, to) = (StoreLocation::parse(&from)?, StoreLocation::parse(&to)?);
    if from == to {
        return Err("--from and --to are the same store".into());
    }
    let source = from.open(CLI_POOL_SIZE)?;
    let target = to.open(CLI_POOL_SIZE)?;
    if !target.is_empty()? {
        return Err(format!("{to} is not empty: copy into a new database or data directory").into());
    }
    let mut counts = Counts::default();
    let mut batch = Vec::with_capacity(COPY_BATCH);
    source.export(&mut |item| {
        counts.add(&item);
        batch.push(item);
        if batch.len() == COPY_BATCH {
            target.import(&batch)?;
            batch.clear();
        }
        Ok::<(), StoreError>(())
    })?;
    target.import(&batch)?;
    target.flush()?;
    println!(
        "copied {from} to {to}: {} certificates, {} challenges, {} MDM clients, {} audit entries, {} CRL, \
         {} webhook endpoints, {} webhook deliveries",
        counts.certificates,
        counts.challenges,
        counts.mdm_clients,
        counts.audit,
        counts.crls,
        counts.webhooks,
        counts.deliveries
    );
    Ok(())
}

#[derive(Default)]
struct Counts {
    certificates: u64,
    challenges: u64,
    mdm_clients: u64,
    audit: u64,
    crls: u64,
    webhooks: u64,
    deliveries: u64,
}

impl Counts {
    fn add(&mut self, item: &StoreItem) {
        match item {
            StoreItem::Certificate(..) => self.certificates += 1,
            StoreItem::Challenge(..) => self.challenges += 1,
            StoreItem::MdmClient(_) => self.mdm_clients += 1,
            StoreItem::Audit(_) => self.audit += 1,
            StoreItem::Crl(_) => self.crls += 1,
            StoreItem::WebhookEndpoint(_) => self.webhooks += 1,
            StoreItem::WebhookDelivery(_) => self.deliveries += 1,
            StoreItem::Counter(..)
            | StoreItem::Identity(..)
            | StoreItem::CaGeneration(_)
            | StoreItem::IssuerCrl(_)
            | StoreItem::Announced(..)
            | StoreItem::ConsoleAccount(_) => {}
        }
    }
}
