//! The command line. `serve` and `init` work on the data directory; every other command is a
//! client of the running server's admin API.

mod admin_accounts;
mod ca;
mod client;
mod store;
mod webhook;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use scepd_ca::{CaParams, KeyBits, KeyGenerator, KeyRole, SoftwareKeys};

use crate::config::{Config, ServeArgs, DEFAULT_DATA};
use crate::datadir::DataDir;
use crate::keys::imported::{open_private_key, ImportedKeys};
use crate::keys::pkcs11::{Token, TokenKeys};

#[derive(Parser)]
#[command(name = "scepd", version, about = "SCEP certificate authority for managed devices")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (initializing an empty data directory first).
    Serve(ServeArgs),
    /// Create a new CA, import an existing one, or start a delegated (two-step) CA.
    Init(InitArgs),
    /// The CA certificate.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Issued certificates (through the admin API).
    #[command(subcommand)]
    Cert(CertCommand),
    /// MDM credentials for the challenge endpoints (through the admin API).
    #[command(subcommand)]
    Mdm(MdmCommand),
    /// One-time challenges (through the admin API).
    #[command(subcommand)]
    Challenge(ChallengeCommand),
    /// Devices (through the admin API).
    #[command(subcommand)]
    Device(DeviceCommand),
    /// The audit trail (through the admin API).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Webhook endpoints and deliveries (through the admin API).
    #[command(subcommand)]
    Webhook(webhook::WebhookCommand),
    /// Web console accounts (through the admin API, or on the store when no server runs).
    #[command(subcommand)]
    Admin(admin_accounts::AdminCommand),
    /// An unsigned Apple configuration profile (CA certificates and SCEP payload) on stdout.
    Profile(ProfileArgs),
    /// The configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// A consistent copy of the data directory (keys, certificates, store) into OUT, while the
    /// server runs (through its admin API) or not.
    Backup {
        #[command(flatten)]
        client: ClientArgs,
        out: PathBuf,
    },
    /// Load benchmark: a real SCEP client enrolling N times over C keep-alive connections
    /// against a SCEP URL on this machine, validating every reply.
    Bench(crate::bench::BenchArgs),
    /// Fills a (stopped) data directory's store with N certificates for the scale benchmarks.
    #[command(hide = true)]
    BenchFill(crate::bench::FillArgs),
    /// The shared store's schema.
    #[command(subcommand)]
    Db(store::DbCommand),
    /// Moves a whole store between backends (`redb:DIR`, `postgres://…`).
    #[command(subcommand)]
    Store(store::StoreCommand),
    /// Puts a backup back into an empty data directory (the server must not be running on it).
    Restore {
        #[arg(long, env = "SCEPD_DATA", default_value = DEFAULT_DATA)]
        data: PathBuf,
        backup: PathBuf,
    },
}

#[derive(Subcommand)]
enum ProfileCommand {
    /// The Okta Device Trust set: CA certificates, SCEP, Okta Verify configuration, login item,
    /// SSO extension (macOS); SSO extension (iOS/iPadOS).
    Odt(OdtArgs),
}

#[derive(Args)]
struct OdtArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The Okta org, e.g. example.okta.com
    #[arg(long)]
    okta_org: String,
    #[arg(long, value_enum)]
    platform: crate::profile::odt::Platform,
    /// Write one file per platform (and the EDR profile) into this directory instead of stdout.
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// `jamf` wraps the Okta Verify settings in com.apple.ManagedClient.preferences.
    #[arg(long, value_enum, default_value = "standard")]
    format: crate::profile::odt::Format,
    /// scepd's public SCEP URL (default: the running server's; without one, the public URL the
    /// server last ran with).
    #[arg(long)]
    url: Option<String>,
    /// A static challenge for the SCEP payload.
    #[arg(long, conflicts_with_all = ["mint", "mdm_challenge"])]
    challenge: Option<String>,
    /// Mint a one-time challenge from the running server.
    #[arg(long, conflicts_with = "mdm_challenge")]
    mint: bool,
    /// Leave the Challenge out: the MDM fills it in (Jamf's dynamic challenge, Kandji).
    #[arg(long)]
    mdm_challenge: bool,
    #[arg(long, default_value = "CN=$COMPUTERNAME managementAttestation $UDID")]
    subject: String,
    /// The secret that tells Okta an iOS/iPadOS device is managed.
    #[arg(long)]
    management_hint: Option<String>,
    /// Extra hosts for the SSO extension (a custom Okta domain).
    #[arg(long)]
    okta_custom_domain: Vec<String>,
    /// Also add com.apple.loginitems.managed for macOS 12 and older.
    #[arg(long)]
    legacy_login_item: bool,
    /// OktaVerify.ReportDiagnostics.
    #[arg(long)]
    report_diagnostics: Option<bool>,
    /// iOS: print Okta Verify's managed app configuration dictionary instead of a profile.
    #[arg(long)]
    app_config: bool,
    /// EDR signals plugin settings, deployed as a profile of their own.
    #[arg(long, value_parser = ["crowdstrike"])]
    edr: Option<String>,
    #[arg(long, default_value = "com.scepd.odt")]
    identifier_prefix: String,
    /// Sign the profile (CMS, like `security cms -S`) with this certificate and key (PEM).
    #[arg(long, num_args = 2, value_names = ["CERT", "KEY"])]
    sign: Vec<PathBuf>,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the configuration (file, environment and flags) and print the effective one,
    /// secrets redacted.
    Check(ServeArgs),
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct ProfileArgs {
    #[command(subcommand)]
    odt: Option<ProfileCommand>,
    #[command(flatten)]
    client: ClientArgs,
    /// scepd's public SCEP URL, e.g. https://scep.example.com/scep
    #[arg(long, required = true)]
    url: Option<String>,
    /// A static challenge to put in the payload.
    #[arg(long, conflicts_with = "mint")]
    challenge: Option<String>,
    /// Mint a one-time challenge from the running server for this profile.
    #[arg(long)]
    mint: bool,
    /// The certificate subject; MDM variables pass through verbatim.
    #[arg(long, default_value = "CN=$COMPUTERNAME managementAttestation $UDID")]
    subject: String,
    /// The SCEP payload's Name.
    #[arg(long, default_value = "scepd")]
    name: String,
    /// Prefix of every PayloadIdentifier.
    #[arg(long, default_value = "com.scepd.profile")]
    identifier_prefix: String,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Every entry (after --after), one JSON object per line.
    Export {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(long, default_value_t = 0)]
        after: u64,
    },
}

#[derive(Subcommand)]
enum DeviceCommand {
    /// Revoke every active or superseded certificate of a device.
    Revoke {
        device_id: String,
        #[command(flatten)]
        client: ClientArgs,
        #[arg(long, default_value = "unspecified")]
        reason: String,
    },
}

#[derive(Subcommand)]
enum MdmCommand {
    /// Create an MDM client; its generated password is printed once, alone on the last line.
    Add {
        name: String,
        #[command(flatten)]
        client: ClientArgs,
        /// Lifetime of the challenges this client mints, in seconds (default: the server's).
        #[arg(long)]
        ttl: Option<u64>,
    },
    /// List the MDM clients.
    List {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(long)]
        json: bool,
    },
    /// Remove an MDM client: its password stops working.
    Remove {
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Give an MDM client a new password (printed once, alone on the last line).
    Rotate {
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Subcommand)]
enum ChallengeCommand {
    /// Mint a one-time challenge; prints it alone on stdout.
    New {
        #[command(flatten)]
        client: ClientArgs,
        /// Bind it to a device: the certificate records this device, and the CSR must name it
        /// (in its CN or a SAN).
        #[arg(long)]
        device: Option<String>,
        /// Lifetime in seconds (capped by the server's challenge_max_ttl).
        #[arg(long)]
        ttl: Option<u64>,
        /// The CSR's subject CN must equal this.
        #[arg(long)]
        subject_cn: Option<String>,
        /// One of the CSR's subjectAltNames must equal this.
        #[arg(long)]
        san: Option<String>,
    },
}

#[derive(Args)]
struct InitArgs {
    #[arg(long, env = "SCEPD_DATA", default_value = DEFAULT_DATA)]
    data: PathBuf,
    /// Let the CA act as its own RA (no separate RA certificate).
    #[arg(long)]
    no_ra: bool,
    #[arg(long, default_value_t = CaParams::DEFAULT_KEY_BITS.bits())]
    key_bits: u32,
    #[arg(long, default_value = CaParams::DEFAULT_SUBJECT)]
    ca_subject: String,
    #[arg(long, default_value_t = CaParams::DEFAULT_VALIDITY_DAYS)]
    validity_days: u32,
    /// Existing CA certificate (PEM) to use instead of creating one.
    #[arg(long, requires = "import_ca_key")]
    import_ca_cert: Option<PathBuf>,
    /// Its private key: a PEM file (PKCS#8 or PKCS#1), or the RFC 7512 URI of a key in a PKCS#11
    /// token (`pkcs11:token=…;object=…;type=private`, optionally `?module-path=…&pin-source=file:…`).
    #[arg(long, requires = "import_ca_cert")]
    import_ca_key: Option<PathBuf>,
    /// Certificates above the imported CA (PEM), nearest first.
    #[arg(long, requires = "import_ca_cert")]
    import_chain: Option<PathBuf>,
    /// The RA's private key, already made elsewhere: a PKCS#11 URI or a PEM file. scepd issues
    /// the RA certificate for it; without this flag the RA key is made with the others.
    #[arg(long, conflicts_with_all = ["no_ra", "ca_csr"])]
    import_ra_key: Option<PathBuf>,
    /// The delegated OCSP signer's private key, already made elsewhere: a PKCS#11 URI or a PEM
    /// file (implies --ocsp-signer).
    #[arg(long, conflicts_with = "ca_csr")]
    import_ocsp_key: Option<PathBuf>,
    /// Two-step delegated CA: write a CA key into DIR and its CSR to this file; install the
    /// signed certificate later with `scepd ca install-cert`.
    #[arg(long, conflicts_with_all = ["import_ca_cert", "pkcs11_token"])]
    ca_csr: Option<PathBuf>,
    /// Also create a delegated OCSP signing certificate (otherwise the CA signs OCSP responses).
    #[arg(long)]
    ocsp_signer: bool,
    /// Encrypt the private keys with the passphrase in this file (or set SCEPD_KEY_PASSPHRASE).
    #[arg(long, env = "SCEPD_KEY_PASSPHRASE_FILE")]
    key_passphrase_file: Option<PathBuf>,
    /// PKCS#11 module (shared library) of the token that holds the keys.
    #[arg(long, env = "SCEPD_PKCS11_MODULE")]
    pkcs11_module: Option<PathBuf>,
    /// Make the CA, RA and OCSP signer keys in the PKCS#11 token with this label: the data
    /// directory then holds references to them (`*.key.uri`), not keys.
    #[arg(long, env = "SCEPD_PKCS11_TOKEN", requires = "pkcs11_module")]
    pkcs11_token: Option<String>,
    /// File holding the token's user PIN (or set SCEPD_PKCS11_PIN).
    #[arg(long, env = "SCEPD_PKCS11_PIN_FILE")]
    pkcs11_pin_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum CaCommand {
    /// Print the issuing CA certificate (PEM): the file to upload to Okta.
    Export {
        #[command(flatten)]
        client: ClientArgs,
        /// The next CA's certificate instead (prepared by `scepd ca rollover`).
        #[arg(long)]
        next: bool,
    },
    /// Install the certificate an external root signed for `scepd init --ca-csr`, or with
    /// `--next` for `scepd ca rollover --ca-csr`.
    InstallCert {
        #[command(flatten)]
        client: ClientArgs,
        signed: PathBuf,
        #[arg(long)]
        chain: Option<PathBuf>,
        #[arg(long)]
        no_ra: bool,
        #[arg(long, conflicts_with = "next")]
        ocsp_signer: bool,
        /// The certificate of the next CA (`scepd ca rollover --ca-csr`).
        #[arg(long)]
        next: bool,
        /// PKCS#11 module for the next RA's key, when the current CA key's URI names none.
        #[arg(long, env = "SCEPD_PKCS11_MODULE", requires = "next")]
        pkcs11_module: Option<PathBuf>,
    },
    /// Prepare the next CA (and RA): GetNextCACert announces it until `ca activate-next`.
    Rollover(ca::RolloverArgs),
    /// Make the next CA the current one, now or at `--at` (every node at that moment).
    ActivateNext {
        #[command(flatten)]
        client: ClientArgs,
        /// When, RFC 3339 (`2027-01-31T09:00:00Z`); default: now.
        #[arg(long)]
        at: Option<String>,
    },
    /// The current, next and retired CAs, with their validity and certificate counts.
    List {
        #[command(flatten)]
        client: ClientArgs,
        /// JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove a retired CA whose certificates have all expired: its CRL is no longer signed.
    Remove {
        #[command(flatten)]
        client: ClientArgs,
        /// Its issuer id (40 hex digits, as `scepd ca list` shows it).
        issuer: String,
    },
}

/// How CLI commands reach the server.
#[derive(Args, Clone)]
pub struct ClientArgs {
    /// Data directory of the running server (its admin.url and admin.token are read from it).
    #[arg(long, env = "SCEPD_DATA", default_value = DEFAULT_DATA)]
    data: PathBuf,
    /// Admin API base URL (instead of DIR/admin.url).
    #[arg(long, env = "SCEPD_SERVER")]
    server: Option<String>,
    /// File holding the admin token (instead of DIR/admin.token).
    #[arg(long, env = "SCEPD_TOKEN_FILE")]
    token_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum CertCommand {
    /// List issued certificates.
    List {
        #[command(flatten)]
        client: ClientArgs,
        /// JSON array instead of a table.
        #[arg(long)]
        json: bool,
        #[arg(long)]
        device: Option<String>,
        #[arg(long)]
        status: Option<String>,
        /// Only active certificates whose notAfter is within DURATION (`30d`, `12h`), soonest first.
        #[arg(long, value_name = "DURATION")]
        expiring_within: Option<String>,
    },
    /// Revoke a certificate (idempotent). SERIAL in hex, any case, colons allowed.
    Revoke {
        serial: scepd_ca::Serial,
        #[command(flatten)]
        client: ClientArgs,
        /// RFC 5280 reason: keyCompromise, superseded, cessationOfOperation, affiliationChanged, …
        #[arg(long, default_value = "unspecified")]
        reason: String,
    },
    /// One certificate: PEM and status.
    Show {
        serial: scepd_ca::Serial,
        #[command(flatten)]
        client: ClientArgs,
        #[arg(long)]
        json: bool,
    },
}

type CliResult = Result<(), Box<dyn std::error::Error>>;

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(&args),
        Command::Init(args) => init(args),
        Command::Ca(CaCommand::Export { client, next: false }) => export(&client.data),
        Command::Ca(CaCommand::Export { client, next: true }) => ca::export_next(&client),
        Command::Ca(CaCommand::InstallCert {
            client,
            signed,
            chain,
            no_ra,
            next: true,
            pkcs11_module,
            ..
        }) => ca::install_next(&client, &signed, chain, no_ra, pkcs11_module),
        Command::Ca(CaCommand::InstallCert {
            client,
            signed,
            chain,
            no_ra,
            ocsp_signer,
            ..
        }) => install_cert(&client.data, &signed, chain, no_ra, ocsp_signer),
        Command::Ca(CaCommand::Rollover(args)) => ca::rollover(args),
        Command::Ca(CaCommand::ActivateNext { client, at }) => ca::activate_next(&client, at),
        Command::Ca(CaCommand::List { client, json }) => ca::list(&client, json),
        Command::Ca(CaCommand::Remove { client, issuer }) => ca::remove(&client, &issuer),
        Command::Cert(cmd) => client::cert(cmd),
        Command::Mdm(cmd) => client::mdm(cmd),
        Command::Challenge(cmd) => client::challenge(cmd),
        Command::Device(cmd) => client::device(cmd),
        Command::Webhook(cmd) => webhook::run(cmd),
        Command::Audit(AuditCommand::Export { client, after }) => client::audit_export(&client, after),
        Command::Admin(cmd) => admin_accounts::admin(cmd),
        Command::Profile(args) => profile(&args),
        Command::Backup { client, out } => backup(&client, &out),
        Command::Bench(args) => bench(args),
        Command::BenchFill(args) => crate::bench::fill(&args),
        Command::Restore { data, backup } => restore(&data, &backup),
        Command::Db(cmd) => store::db(cmd),
        Command::Store(cmd) => store::store(cmd),
        Command::Config(ConfigCommand::Check(args)) => config_check(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scepd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: &ServeArgs) -> CliResult {
    let config = Config::resolve(args)?;
    crate::server::init_logging(config.log_format, &config.log_level);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(crate::server::run(config))
}

fn read(path: &PathBuf) -> Result<String, Box<dyn std::error::Error>> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()).into())
}

fn init(args: InitArgs) -> CliResult {
    let dir =
        DataDir::new(&args.data).with_passphrase(crate::datadir::key_passphrase(args.key_passphrase_file.as_deref())?);
    let bits = KeyBits::try_from(args.key_bits)?;
    if let Some(out) = &args.ca_csr {
        let csr = dir.init_csr(&args.ca_subject, bits)?;
        std::fs::write(out, scepd_ca::pem::encode("CERTIFICATE REQUEST", &csr))?;
        println!(
            "CA key written to {}; have {} signed, then run `scepd ca install-cert`",
            dir.path("ca.key.pending").display(),
            out.display()
        );
        return Ok(());
    }
    let pin = crate::datadir::pkcs11_pin(args.pkcs11_pin_file.as_deref())?;
    let pin = pin.as_deref().map(String::as_str);
    let token_keys = match (&args.pkcs11_module, &args.pkcs11_token) {
        (Some(module), Some(label)) => Some(TokenKeys {
            token: Token::open(module, label, pin)?,
        }),
        _ => None,
    };
    let generator: &dyn KeyGenerator = match &token_keys {
        Some(token) => token,
        None => &SoftwareKeys,
    };
    let open = |spec: &PathBuf| open_private_key(spec, args.pkcs11_module.as_deref(), pin);
    let mut imported = Vec::new();
    for (role, spec) in [
        (KeyRole::Ra, &args.import_ra_key),
        (KeyRole::Ocsp, &args.import_ocsp_key),
    ] {
        if let Some(spec) = spec {
            imported.push((role, open(spec)?));
        }
    }
    let keys = &ImportedKeys::new(generator, imported);
    let ocsp_signer = args.ocsp_signer || args.import_ocsp_key.is_some();
    let authority = match (&args.import_ca_cert, &args.import_ca_key) {
        (Some(cert), Some(key)) => {
            let chain = args.import_chain.as_ref().map(read).transpose()?;
            let (authority, warnings) = dir.init_import(
                &read(cert)?,
                open(key)?,
                chain.as_deref(),
                (!args.no_ra, ocsp_signer),
                keys,
            )?;
            for w in warnings {
                eprintln!("warning: {w}");
            }
            authority
        }
        _ => dir.init_new(
            &CaParams {
                subject: scepd_ca::name::parse(&args.ca_subject)?,
                key_bits: bits,
                validity_days: args.validity_days,
                with_ra: !args.no_ra,
            },
            ocsp_signer,
            keys,
        )?,
    };
    println!("CA: {}", authority.ca.subject());
    println!(
        "CA SHA-256 fingerprint: {}",
        hex::encode(authority.ca.fingerprint_sha256())
    );
    if let Some(ra) = &authority.ra {
        println!("RA: {}", ra.subject());
    }
    Ok(())
}

fn install_cert(data: &PathBuf, signed: &PathBuf, chain: Option<PathBuf>, no_ra: bool, ocsp_signer: bool) -> CliResult {
    let dir = DataDir::new(data).with_passphrase(crate::datadir::key_passphrase(None)?);
    let chain = chain.as_ref().map(read).transpose()?;
    let (authority, warnings) = dir.install_cert(&read(signed)?, chain.as_deref(), !no_ra, ocsp_signer)?;
    for w in warnings {
        eprintln!("warning: {w}");
    }
    println!("CA installed: {}", authority.ca.subject());
    Ok(())
}

fn bench(args: crate::bench::BenchArgs) -> CliResult {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(crate::bench::run(args))
}

fn backup(client: &ClientArgs, out: &PathBuf) -> CliResult {
    let dir = DataDir::new(&client.data);
    if !dir.is_initialized() {
        return Err(crate::datadir::DataDirError::NotInitialized(client.data.clone()).into());
    }
    let target = DataDir::new(out);
    if target.path("scepd.redb").exists() || target.is_initialized() {
        return Err(format!("{} already holds a backup", out.display()).into());
    }
    std::fs::create_dir_all(out)?;
    std::fs::set_permissions(out, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    let store_copy = target.path("scepd.redb");
    match client::backup_store(client) {
        // The running server wrote a snapshot into the data directory: move it into place.
        Ok(file) => std::fs::rename(dir.path(&file), &store_copy).or_else(|_| {
            std::fs::copy(dir.path(&file), &store_copy)?;
            std::fs::remove_file(dir.path(&file))
        })?,
        // The server answered with a refusal (on a shared store: its database has its own
        // backup tools): do not copy a store it is not using.
        Err(api_error) if api_error.is::<client::Refused>() => return Err(api_error),
        Err(api_error) => {
            // No server running: take the snapshot from the store directly.
            let store = crate::store::RedbStore::open(&dir.store_path())
                .map_err(|e| format!("the server did not answer ({api_error}) and the store cannot be opened ({e})"))?;
            crate::store::Store::backup_to(&store, &store_copy)?;
        }
    }
    // The keys and certificates, keeping their modes; ca.pem last marks the backup complete.
    let generations = dir.generation_files();
    let mut files = dir.backup_files();
    // The later CA generations (`cas/<issuer id>/…`, after `scepd ca rollover`) too.
    files.extend(generations.iter().map(String::as_str));
    files.sort_by_key(|f| *f == "ca.pem");
    for f in &files {
        target.ensure_parent(f)?;
        std::fs::copy(dir.path(f), target.path(f))?;
    }
    // Checksums of what was written, so that `restore` refuses a copy damaged since.
    files.push("scepd.redb");
    crate::backup_manifest::write(out, &files)?;
    println!("backup written to {}", out.display());
    // A token-backed directory names its keys: the backup is useless without the token.
    let references: Vec<&str> = files.iter().copied().filter(|f| f.ends_with(".key.uri")).collect();
    if !references.is_empty() {
        println!(
            "note: the backup carries references to keys in a PKCS#11 token ({}), not the keys: \
             back the token up with its own tools",
            references.join(", ")
        );
    }
    Ok(())
}

fn restore(data: &PathBuf, backup: &PathBuf) -> CliResult {
    if !DataDir::new(data).restore_from(&DataDir::new(backup))? {
        eprintln!(
            "warning: {} has no {}: made by an older scepd, restored without checking it",
            backup.display(),
            crate::backup_manifest::MANIFEST
        );
    }
    println!("restored {} into {}", backup.display(), data.display());
    Ok(())
}

fn config_check(args: &ServeArgs) -> CliResult {
    let config = Config::resolve(args)?;
    print!("{}", toml::to_string(&config)?);
    Ok(())
}

fn profile(args: &ProfileArgs) -> CliResult {
    if let Some(ProfileCommand::Odt(odt)) = &args.odt {
        return profile_odt(odt);
    }
    let url = args.url.as_deref().ok_or("--url is required")?;
    let (authority, next_ca) = ca::profile_certificates(&args.client)?;
    let challenge = match (&args.challenge, args.mint) {
        (Some(c), _) => Some(c.clone()),
        (None, true) => Some(client::mint(&args.client, serde_json::json!({}))?),
        (None, false) => None,
    };
    let subject = scepd_ca::name::parse(&args.subject)?;
    let prefix = args.identifier_prefix.as_str();
    let mut payloads = crate::profile::certificate_payloads(prefix, &authority.0, &authority.1);
    payloads.extend(ca::next_ca_payloads(prefix, next_ca.as_deref()));
    payloads.push(crate::profile::scep_payload(&crate::profile::ScepProfile {
        url,
        name: &args.name,
        subject: &subject,
        challenge: challenge.as_deref(),
        ca_der: &authority.0,
        chain: &authority.1,
        identifier_prefix: prefix,
    }));
    print!(
        "{}",
        crate::profile::configuration(prefix, "Device certificate (scepd)", true, payloads)
    );
    Ok(())
}

fn profile_odt(args: &OdtArgs) -> CliResult {
    use crate::profile::odt::{self, Platform};
    let (org_url, org_host) = odt::org(&args.okta_org);
    let prefix = args.identifier_prefix.as_str();
    if args.app_config {
        if args.platform != Platform::Ios {
            return Err("--app-config is for --platform ios".into());
        }
        print!(
            "{}",
            crate::profile::to_xml(&odt::ios_app_config(&org_url, args.management_hint.as_deref()))
        );
        return Ok(());
    }
    let mut hosts = vec![org_host];
    hosts.extend(args.okta_custom_domain.iter().map(|h| odt::org(h).1));
    let ((ca_der, chain), next_ca) = ca::profile_certificates(&args.client)?;
    let subject = scepd_ca::name::parse(&args.subject)?;
    let url = match &args.url {
        Some(u) => u.clone(),
        None => default_scep_url(&args.client)?,
    };
    let challenge = match (&args.challenge, args.mint) {
        (Some(c), _) => Some(c.clone()),
        (None, true) => Some(client::mint(&args.client, serde_json::json!({}))?),
        (None, false) => {
            if !args.mdm_challenge {
                eprintln!("note: no --challenge, --mint or --mdm-challenge: the SCEP payload has no Challenge for the MDM to fill in");
            }
            None
        }
    };
    let scep = crate::profile::ScepProfile {
        url: &url,
        name: "Okta Device Trust",
        subject: &subject,
        challenge: challenge.as_deref(),
        ca_der: &ca_der,
        chain: &chain,
        identifier_prefix: prefix,
    };
    let spec = odt::Odt {
        org_url: org_url.clone(),
        hosts,
        platform: args.platform,
        format: args.format,
        prefix,
        scep: Some(scep),
        management_hint: args.management_hint.as_deref(),
        legacy_login_item: args.legacy_login_item,
        report_diagnostics: args.report_diagnostics,
    };
    let macos = args.platform == Platform::Macos;
    let platform_name = if macos { "macos" } else { "ios" };
    let mut main_payloads = odt::payloads(&spec);
    main_payloads.extend(ca::next_ca_payloads(prefix, next_ca.as_deref()));
    let main = crate::profile::configuration(prefix, "Okta Device Trust", macos, main_payloads);
    let edr = args.edr.as_ref().map(|_| {
        let p = format!("{prefix}.edr");
        crate::profile::configuration(
            &p,
            "Okta Verify EDR signals (CrowdStrike)",
            macos,
            odt::crowdstrike_payloads(&p, args.format),
        )
    });
    let render = |xml: String| -> Result<Vec<u8>, Box<dyn std::error::Error>> {
        match args.sign.as_slice() {
            [cert, key] => crate::profile::sign(&xml, &read(cert)?, &read(key)?),
            _ => Ok(xml.into_bytes()),
        }
    };
    match &args.out_dir {
        Some(out) => {
            std::fs::create_dir_all(out)?;
            let main_path = out.join(format!("okta-device-trust-{platform_name}.mobileconfig"));
            std::fs::write(&main_path, render(main)?)?;
            println!("{}", main_path.display());
            if let Some(edr) = edr {
                let edr_path = out.join(format!("okta-verify-edr-crowdstrike-{platform_name}.mobileconfig"));
                std::fs::write(&edr_path, render(edr)?)?;
                println!("{}", edr_path.display());
            }
        }
        // On stdout one profile: the EDR one when asked for (it is deployed separately).
        None => std::io::Write::write_all(&mut std::io::stdout(), &render(edr.unwrap_or(main))?)?,
    }
    Ok(())
}

/// The SCEP URL for a profile made without `--url`: the running server's, else the one the
/// server last ran with (recorded in the data directory), said on stderr.
fn default_scep_url(client: &ClientArgs) -> Result<String, Box<dyn std::error::Error>> {
    let server_error = match client::server_scep_url(client) {
        Ok(url) => return Ok(url),
        Err(e) => e,
    };
    let dir = DataDir::new(&client.data);
    let recorded = dir.path(crate::datadir::PUBLIC_URL_FILE);
    match dir.recorded_public_url() {
        Some(public_url) => {
            let url = format!("{public_url}/scep");
            eprintln!(
                "note: no server answered ({server_error}); using the SCEP URL of the public URL the server last ran with ({}): {url}",
                recorded.display()
            );
            Ok(url)
        }
        None => Err(format!(
            "no SCEP URL: pass --url https://HOST/scep, or run `scepd serve --data {} --public-url https://HOST` \
             (no server answered: {server_error}; {} does not exist)",
            client.data.display(),
            recorded.display()
        )
        .into()),
    }
}

fn export(data: &PathBuf) -> CliResult {
    let dir = DataDir::new(data);
    if !dir.is_initialized() {
        return Err(crate::datadir::DataDirError::NotInitialized(data.clone()).into());
    }
    print!("{}", std::fs::read_to_string(dir.path("ca.pem"))?);
    Ok(())
}
