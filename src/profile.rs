//! Saved API profiles: what every run against one API repeats (its base URL, headers,
//! parameters, pagination and politeness flags), kept once in a TOML file.
//!
//! A profile is read before the command line is parsed and turned into arguments placed
//! before the user's own, so a flag on the command line wins over the profile, and the
//! profile over the defaults. Credentials are never stored in it: a profile names the
//! environment variable (or the command) that gives them.
//!
//! ```toml
//! [profiles.github]
//! url = "https://api.github.com"
//! headers = ["Accept: application/vnd.github+json"]
//! bearer_env = "GITHUB_TOKEN"
//! options = ["--paginate", "link", "--rate", "10/s"]
//! ```

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The file's layout.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct File {
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// One API's settings.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The base URL; a URL argument that is a path (`/repos/x/y/issues`) is joined to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `Name: value` headers sent with every request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<String>,
    /// Headers whose values come from environment variables: name → variable.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers_env: BTreeMap<String, String>,
    /// `KEY=VALUE` query parameters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<String>,
    /// The environment variable holding the bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_env: Option<String>,
    /// A command that prints the bearer token (`gh auth token`), run with `sh -c`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_command: Option<String>,
    /// Any other flags, as on the command line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// Where profiles are read from: `--config FILE`, `APIFETCH_CONFIG`, or
/// `$XDG_CONFIG_HOME/apifetch/config.toml` (`~/.config/…`; `%APPDATA%\apifetch\…`).
pub fn path(given: Option<&Path>, var: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(path) = given {
        return Some(path.to_path_buf());
    }
    if let Some(path) = var("APIFETCH_CONFIG").filter(|p| !p.is_empty()) {
        return Some(path.into());
    }
    let base = var("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|home| Path::new(&home).join(".config")))
        .or_else(|| var("APPDATA").map(PathBuf::from))?;
    Some(base.join("apifetch").join("config.toml"))
}

/// The command line with the profile `--profile NAME` names put before the user's own
/// arguments (after the program name). Without `--profile`, the arguments as they are.
pub fn expand(args: Vec<OsString>) -> Result<Vec<OsString>, Error> {
    let (Some(name), config) = (flag(&args, "--profile"), flag(&args, "--config")) else {
        return Ok(args);
    };
    let path = path(config.as_deref().map(Path::new), |v| std::env::var(v).ok())
        .ok_or_else(|| Error::Usage("--profile: no config file (set HOME or --config)".into()))?;
    let file = read(&path)?;
    let profile = file.profiles.get(&name).ok_or_else(|| {
        Error::Usage(format!(
            "--profile {name}: {} has no such profile (it has: {})",
            path.display(),
            file.profiles.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    })?;
    warn_if_exposed(&path, profile);
    let mut expanded: Vec<OsString> = args.iter().take(1).cloned().collect();
    let settings = profile.arguments(&|v| std::env::var(v).ok())?;
    expanded.extend(settings.into_iter().map(OsString::from));
    expanded.extend(args.into_iter().skip(1));
    Ok(expanded)
}

impl Profile {
    /// The profile as command-line arguments, credentials read from where it names them.
    fn arguments(&self, var: &dyn Fn(&str) -> Option<String>) -> Result<Vec<String>, Error> {
        let mut args = Vec::new();
        if let Some(url) = &self.url {
            args.extend(["--base-url".to_string(), url.clone()]);
        }
        for header in &self.headers {
            args.extend(["-H".to_string(), header.clone()]);
        }
        for (name, variable) in &self.headers_env {
            let value = var(variable).ok_or_else(|| missing(variable))?;
            args.extend(["-H".to_string(), format!("{name}: {value}")]);
        }
        for param in &self.params {
            args.extend(["--param".to_string(), param.clone()]);
        }
        if let Some(variable) = &self.bearer_env {
            let token = var(variable).ok_or_else(|| missing(variable))?;
            args.extend(["--bearer".to_string(), token]);
        } else if let Some(command) = &self.bearer_command {
            args.extend(["--bearer".to_string(), run(command)?]);
        }
        args.extend(self.options.iter().cloned());
        Ok(args)
    }
}

/// Saves `profile` as `name` in the config file at `path`, keeping its other profiles.
pub fn save(path: &Path, name: &str, profile: Profile) -> Result<(), Error> {
    let mut file = match path.exists() {
        true => read(path)?,
        false => File::default(),
    };
    file.profiles.insert(name.to_string(), profile);
    let text = toml::to_string_pretty(&file)
        .map_err(|e| Error::Usage(format!("cannot write profile {name}: {e}")))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::output(e, format!("cannot create {}", dir.display())))?;
    }
    std::fs::write(path, text)
        .map_err(|e| Error::output(e, format!("cannot write {}", path.display())))
}

fn read(path: &Path) -> Result<File, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Usage(format!("cannot read {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| Error::Usage(format!("{}: {e}", path.display())))
}

/// The value of `--name VALUE` or `--name=VALUE` among `args`.
fn flag(args: &[OsString], name: &str) -> Option<String> {
    let mut args = args.iter().skip(1).filter_map(|a| a.to_str());
    while let Some(arg) = args.next() {
        if arg == name {
            return args.next().map(str::to_string);
        }
        if let Some(value) = arg.strip_prefix(name).and_then(|v| v.strip_prefix('=')) {
            return Some(value.to_string());
        }
    }
    None
}

fn missing(variable: &str) -> Error {
    Error::Usage(format!(
        "the profile takes a credential from ${variable}, which is not set"
    ))
}

/// Runs a credential command; its first line of output is the secret.
fn run(command: &str) -> Result<String, Error> {
    let output = std::process::Command::new("sh")
        .args(["-c", command])
        .output()
        .map_err(|e| Error::Usage(format!("cannot run the profile's bearer_command: {e}")))?;
    let token = String::from_utf8_lossy(&output.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    match output.status.success() && !token.is_empty() {
        true => Ok(token),
        false => Err(Error::Usage(
            "the profile's bearer_command gave no token".into(),
        )),
    }
}

/// A file that others may read must not hold a credential: profiles name where
/// credentials come from, but a header can still be written into one by hand.
fn warn_if_exposed(path: &Path, profile: &Profile) {
    let secret = profile.headers.iter().any(|h| {
        crate::report::redact::is_secret_header(h.split(':').next().unwrap_or_default().trim())
    }) || profile
        .params
        .iter()
        .any(|p| crate::report::redact::is_secret_param(p.split('=').next().unwrap_or_default()));
    if secret && readable_by_others(path) {
        // Logging starts after the command line is read, which this is part of.
        eprintln!(
            "apifetch: warning: {} holds a credential and others can read it: chmod 600 \
             it, or take the credential from the environment (headers_env, bearer_env)",
            path.display()
        );
    }
}

#[cfg(unix)]
fn readable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o044 != 0)
}

#[cfg(not(unix))]
fn readable_by_others(_: &Path) -> bool {
    false
}
