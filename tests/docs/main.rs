//! docs/reference.md against the code. Every command, flag, positional argument, environment
//! variable and possible value (walked from clap's command tree), every configuration key (the
//! effective configuration's fields and the file's keys), every HTTP path the router matches (the
//! path literals of `src/http/`) and every metric (as registered) must be documented there; and
//! every flag and `scepd_` metric the reference names must exist. The lists come from the code:
//! a new flag, key, route or metric fails this test until the reference names it.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use clap::CommandFactory;

/// A heading of the reference and the text up to the next heading of any level.
struct Section {
    title: String,
    own_text: String,
}

struct Reference {
    text: String,
    /// By anchor, as a Markdown renderer makes them (`### \`scepd serve\`` → `scepd-serve`).
    sections: HashMap<String, Section>,
}

fn anchor(title: &str) -> String {
    title
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

impl Reference {
    fn load() -> Reference {
        let text = std::fs::read_to_string(repo("docs/reference.md")).expect("docs/reference.md");
        let mut sections = HashMap::new();
        let mut current: Option<Section> = None;
        let mut in_code_block = false;
        for line in text.lines() {
            in_code_block ^= line.starts_with("```");
            let heading = !in_code_block && line.starts_with('#');
            if heading {
                if let Some(s) = current.take() {
                    sections.insert(anchor(&s.title), s);
                }
                current = Some(Section {
                    title: line.trim_start_matches('#').trim().to_string(),
                    own_text: String::new(),
                });
            } else if let Some(s) = current.as_mut() {
                s.own_text.push_str(line);
                s.own_text.push('\n');
            }
        }
        if let Some(s) = current.take() {
            sections.insert(anchor(&s.title), s);
        }
        Reference { text, sections }
    }

    fn section(&self, title: &str) -> &Section {
        self.sections
            .get(&anchor(title))
            .unwrap_or_else(|| panic!("docs/reference.md has no section {title:?}"))
    }

    /// The anchor of a command's section: the one headed by the command in a code span.
    fn command_section(&self, command: &str) -> Option<&str> {
        self.sections
            .iter()
            .find(|(_, s)| s.title == format!("`{command}`"))
            .map(|(anchor, _)| anchor.as_str())
    }

    /// A section's own text and that of every section of this file it links to (`](#anchor)`),
    /// transitively: `config check` says "every flag of [`scepd serve`](#scepd-serve)".
    fn text_with_links(&self, anchor: &str) -> String {
        let mut seen = BTreeSet::new();
        let mut todo = vec![anchor.to_string()];
        let mut out = String::new();
        while let Some(a) = todo.pop() {
            if !seen.insert(a.clone()) {
                continue;
            }
            let Some(s) = self.sections.get(&a) else { continue };
            out.push_str(&s.own_text);
            todo.extend(
                s.own_text
                    .split("](#")
                    .skip(1)
                    .filter_map(|rest| rest.split(')').next().map(str::to_string)),
            );
        }
        out
    }
}

/// `word` in `text` with no identifier character (or `-`) right before or after it.
fn mentions(text: &str, word: &str) -> bool {
    let boundary = |c: Option<char>| !c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    text.match_indices(word)
        .any(|(i, _)| boundary(text[..i].chars().next_back()) && boundary(text[i + word.len()..].chars().next()))
}

/// The code spans (`…`) of `text`.
fn code_spans(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// Every visible command below `cmd`, with its full name (`scepd cert revoke`).
fn commands(cmd: &clap::Command, prefix: &str, out: &mut Vec<(String, clap::Command)>) {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("{prefix} {}", sub.get_name());
        out.push((name.clone(), sub.clone()));
        commands(sub, &name, out);
    }
}

fn all_commands() -> Vec<(String, clap::Command)> {
    let mut out = Vec::new();
    commands(&scepd::cli::Cli::command(), "scepd", &mut out);
    assert!(out.len() > 20, "the command tree was not walked: {}", out.len());
    out
}

/// What the reference must say about one argument.
fn words_for(arg: &clap::Arg) -> Vec<String> {
    let mut words = Vec::new();
    match (arg.get_long(), arg.get_short()) {
        (None, None) => words.push(
            arg.get_value_names()
                .and_then(|v| v.first())
                .map_or_else(|| arg.get_id().as_str().to_uppercase(), |v| v.to_string()),
        ),
        (long, short) => {
            words.extend(long.map(|l| format!("--{l}")));
            words.extend(short.map(|s| format!("-{s}")));
        }
    }
    words.extend(arg.get_env().map(|e| e.to_string_lossy().into_owned()));
    let values: Vec<String> = arg
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| v.get_name().to_string())
        .collect();
    if values != ["true", "false"] {
        words.extend(values);
    }
    words
}

#[test]
fn every_command_flag_argument_and_value_is_in_the_reference() {
    let reference = Reference::load();
    let mut missing = Vec::new();
    for (name, cmd) in all_commands() {
        let Some(anchor) = reference.command_section(&name) else {
            missing.push(format!("a section headed `{name}`"));
            continue;
        };
        let text = reference.text_with_links(anchor);
        for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
            for word in words_for(arg) {
                if !mentions(&text, &word) {
                    missing.push(format!("{name}: {word}"));
                }
            }
        }
    }
    assert!(missing.is_empty(), "docs/reference.md lacks:\n{}", missing.join("\n"));
}

#[test]
fn every_flag_the_reference_names_exists() {
    let reference = Reference::load();
    let mut known: BTreeSet<String> = ["--help".to_string(), "--version".to_string()].into();
    for (_, cmd) in all_commands() {
        for arg in cmd.get_arguments() {
            let aliases = arg.get_all_aliases().unwrap_or_default();
            known.extend(arg.get_long().into_iter().chain(aliases).map(|l| format!("--{l}")));
        }
    }
    let flag = regex::Regex::new(r"(^|[^A-Za-z0-9-])(--[a-z][a-z0-9-]*)").unwrap();
    let unknown: BTreeSet<&str> = flag
        .captures_iter(&reference.text)
        .map(|c| c.get(2).unwrap().as_str())
        .filter(|f| !known.contains(*f))
        .collect();
    assert!(
        unknown.is_empty(),
        "docs/reference.md names flags that do not exist: {unknown:?}"
    );
}

/// The configuration file's keys: the effective configuration's fields (as `config check` prints
/// them) and what the file parser accepts (`serve`'s arguments, but `--config` itself).
fn config_keys() -> BTreeSet<String> {
    let config = scepd::config::Config::resolve(&scepd::config::ServeArgs::default()).unwrap();
    let serde_json::Value::Object(fields) = serde_json::to_value(&config).unwrap() else {
        panic!("the configuration does not serialize as a map")
    };
    let mut keys: BTreeSet<String> = fields.keys().cloned().collect();
    let serve = all_commands()
        .into_iter()
        .find(|(name, _)| name == "scepd serve")
        .unwrap()
        .1;
    keys.extend(
        serve
            .get_arguments()
            .map(|a| a.get_id().to_string())
            .filter(|id| id != "config"),
    );
    assert!(keys.contains("min_key_bits") && keys.contains("store_url"), "{keys:?}");
    keys
}

/// Fails naming each of `names` that no code span of the reference's section `title` shows:
/// as the whole span (`whole`), or inside one (a path inside `/api/v1/certificates/{serial}`).
fn assert_shown(title: &str, names: impl IntoIterator<Item = String>, whole: bool) {
    let reference = Reference::load();
    let spans = code_spans(&reference.section(title).own_text);
    let shown = |name: &str| spans.iter().any(|s| if whole { *s == name } else { s.contains(name) });
    let missing: Vec<String> = names.into_iter().filter(|n| !shown(n)).collect();
    assert!(missing.is_empty(), "{title} in docs/reference.md lacks: {missing:?}");
}

#[test]
fn every_configuration_key_is_in_the_reference() {
    assert_shown("Configuration keys", config_keys(), true);
}

/// The path literals the HTTP adapter matches (tests left out).
fn http_paths() -> BTreeSet<String> {
    let literal = regex::Regex::new(r#""(/[A-Za-z][A-Za-z0-9_./-]*)""#).unwrap();
    let mut paths = BTreeSet::new();
    let mut files = vec![repo("src/http")];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if path.extension().is_some_and(|e| e == "rs") {
            let source = std::fs::read_to_string(&path).unwrap();
            let code = source.split("#[cfg(test)]").next().unwrap_or_default();
            paths.extend(literal.captures_iter(code).map(|c| c[1].to_string()));
        }
    }
    for expected in ["/scep", "/api/v1/challenges", "/crl", "/metrics"] {
        assert!(
            paths.contains(expected),
            "{expected} not found in src/http: have the routes moved? {paths:?}"
        );
    }
    paths
}

#[test]
fn every_http_path_is_in_the_reference() {
    assert_shown("HTTP endpoints", http_paths(), false);
}

#[test]
fn every_metric_is_in_the_reference_and_every_one_named_exists() {
    let metrics = scepd::metrics::Metrics::new();
    let names = metrics.names();
    assert!(names.iter().any(|n| n == "scepd_scep_requests_total"), "{names:?}");
    assert_shown("Metrics", names.to_vec(), true);
    let reference = Reference::load();
    let unknown: Vec<&str> = code_spans(&reference.section("Metrics").own_text)
        .into_iter()
        .filter(|s| s.starts_with("scepd_") || s.starts_with("process_"))
        .filter(|s| !names.iter().any(|n| n == s))
        .collect();
    assert!(
        unknown.is_empty(),
        "Metrics names metrics that do not exist: {unknown:?}"
    );
}
