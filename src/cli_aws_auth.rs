//! `eks-auth aws-auth check|add|remove`: aws-auth manifests kept in Git, checked and edited with the same code the
//! remediator uses on live clusters ([`crate::aws_auth`]). The binary only parses arguments and calls [`run`].
//!
//! Exit status: `check` 0 clean, 1 findings at or above `--fail-on`, 2 unreadable input; `add`/`remove` 0 done
//! (or already in the wanted state), 2 refused or unreadable, with one line on stderr saying why.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use serde_json::json;

use crate::aws_auth::check::{self, Severity, Summary};
use crate::aws_auth::{
    add_mapping, remove_mapping, unified_diff, EditError, ManifestEdit, ManifestError, NewMapping,
};

/// Largest manifest read (aws-auth is a ConfigMap: at most 1 MiB in etcd).
const MAX_FILE: u64 = 8 << 20;

/// `eks-auth aws-auth ...`
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Report what the authenticator would do with aws-auth manifests: dropped entries, YAML errors, role paths,
    /// placeholders, wildcards, duplicates, reserved or empty usernames, a missing node role, system:masters grants.
    /// Exit 0 clean, 1 findings at or above --fail-on, 2 unreadable input.
    Check {
        /// Manifest files (`-` for stdin): a ConfigMap (one or more YAML documents), a bare data block, or a list.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Shorthand for --format json.
        #[arg(long)]
        json: bool,
        /// Lowest severity that makes the exit status 1.
        #[arg(long, value_enum, default_value_t = FailOn::Error)]
        fail_on: FailOn,
    },
    /// Append one mapping (role -> mapRoles, path stripped; user -> mapUsers), keeping every other byte.
    /// Prints the new file (or writes it with --in-place, or a diff with --dry-run).
    Add {
        /// The manifest (`-` for stdin).
        file: PathBuf,
        /// IAM role or user ARN (an assumed-role ARN is written as its role).
        #[arg(long)]
        arn: String,
        /// Kubernetes username (templates such as {{SessionName}} allowed).
        #[arg(long)]
        username: String,
        /// Kubernetes group (repeatable).
        #[arg(long = "group")]
        groups: Vec<String>,
        #[command(flatten)]
        write: WriteOpts,
        /// Remove a different mapping of the same ARN (or of it with its role path) instead of refusing.
        #[arg(long)]
        replace: bool,
    },
    /// Remove every entry naming an ARN, keeping every other byte. Refuses to remove the last node-role or the last
    /// system:masters mapping unless --force.
    Remove {
        file: PathBuf,
        /// The ARN exactly as the entry writes it (case-insensitive).
        #[arg(long)]
        arn: String,
        #[command(flatten)]
        write: WriteOpts,
        /// Remove even the last node-role or system:masters mapping.
        #[arg(long)]
        force: bool,
    },
}

/// Where an edit goes.
#[derive(Debug, clap::Args)]
pub struct WriteOpts {
    /// Replace the file (atomically: temporary file + rename, permissions kept).
    #[arg(long, conflicts_with = "dry_run")]
    in_place: bool,
    /// Print a unified diff instead of the new file; write nothing.
    #[arg(long)]
    dry_run: bool,
}

/// `check` output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
    /// GitHub Actions annotations.
    Github,
}

/// `--fail-on` levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    Error,
    Warning,
    Info,
    /// Always exit 0 when every file was read.
    Never,
}

impl FailOn {
    fn fails(self, s: Severity) -> bool {
        match self {
            FailOn::Error => s >= Severity::Error,
            FailOn::Warning => s >= Severity::Warning,
            FailOn::Info => true,
            FailOn::Never => false,
        }
    }
}

/// Runs one `aws-auth` subcommand and returns the process exit status.
pub fn run(cmd: &Command) -> ExitCode {
    let code = match cmd {
        Command::Check {
            files,
            format,
            json,
            fail_on,
        } => run_check(files, if *json { Format::Json } else { *format }, *fail_on),
        Command::Add {
            file,
            arn,
            username,
            groups,
            write,
            replace,
        } => {
            let m = NewMapping {
                arn: arn.clone(),
                username: username.clone(),
                groups: groups.clone(),
            };
            run_edit(file, write, |text| add_mapping(text, &m, *replace))
        }
        Command::Remove {
            file,
            arn,
            write,
            force,
        } => run_edit(file, write, |text| remove_mapping(text, arn, *force)),
    };
    let _ = std::io::stdout().flush();
    ExitCode::from(code)
}

fn display(path: &Path) -> String {
    if path.as_os_str() == "-" {
        "<stdin>".into()
    } else {
        path.display().to_string()
    }
}

/// Reads a manifest file (or stdin for `-`) as UTF-8.
fn read(path: &Path) -> Result<String, String> {
    let mut buf = Vec::new();
    let res = if path.as_os_str() == "-" {
        std::io::stdin()
            .lock()
            .take(MAX_FILE + 1)
            .read_to_end(&mut buf)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(MAX_FILE + 1).read_to_end(&mut buf))
    };
    res.map_err(|e| format!("cannot read {}: {e}", display(path)))?;
    if buf.len() as u64 > MAX_FILE {
        return Err(format!(
            "{} is over the {MAX_FILE}-byte limit",
            display(path)
        ));
    }
    String::from_utf8(buf).map_err(|_| format!("{} is not UTF-8", display(path)))
}

fn run_check(files: &[PathBuf], format: Format, fail_on: FailOn) -> u8 {
    let mut stdout = std::io::stdout().lock();
    let mut unreadable = false;
    let mut failed = false;
    let mut reports = Vec::new();
    let mut total = Summary::default();
    for path in files {
        let name = display(path);
        let text = match read(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("eks-auth: {e}");
                unreadable = true;
                reports.push(json!({"file": name, "error": e}));
                continue;
            }
        };
        let findings = check::check(&text);
        failed |= findings.iter().any(|f| fail_on.fails(f.severity));
        let s = Summary::of(&findings);
        total.error += s.error;
        total.warning += s.warning;
        total.info += s.info;
        let _ = match format {
            Format::Human => stdout.write_all(check::format_human(&name, &findings).as_bytes()),
            Format::Github => stdout.write_all(check::format_github(&name, &findings).as_bytes()),
            Format::Json => Ok(()),
        };
        reports.push(json!({"file": name, "summary": s, "findings": findings}));
    }
    let _ = match format {
        Format::Json => writeln!(
            stdout,
            "{}",
            serde_json::to_string_pretty(&json!({
                "files": reports,
                "summary": total,
                "failed": failed,
            }))
            .unwrap_or_default()
        ),
        Format::Human => writeln!(
            stdout,
            "{} file{} checked: {} error{}, {} warning{}, {} info",
            files.len(),
            plural(files.len()),
            total.error,
            plural(total.error),
            total.warning,
            plural(total.warning),
            total.info
        ),
        Format::Github => Ok(()),
    };
    match (unreadable, failed) {
        (true, _) => 2,
        (false, true) => 1,
        (false, false) => 0,
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn run_edit(
    path: &Path,
    opts: &WriteOpts,
    edit: impl FnOnce(&str) -> Result<ManifestEdit, ManifestError>,
) -> u8 {
    if opts.in_place && path.as_os_str() == "-" {
        eprintln!("eks-auth: --in-place needs a file, not stdin");
        return 2;
    }
    let text = match read(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("eks-auth: {e}");
            return 2;
        }
    };
    let name = display(path);
    let unchanged = |why: String| {
        eprintln!("eks-auth: {why}; {name} unchanged");
        if !opts.in_place && !opts.dry_run {
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
        }
        0
    };
    let result = match edit(&text) {
        Ok(r) => r,
        Err(ManifestError::Edit(e @ EditError::AlreadyPresent { .. })) => {
            return unchanged(format!("already present: {e}"))
        }
        Err(e @ ManifestError::NotFound { .. }) => return unchanged(format!("not present: {e}")),
        Err(e @ ManifestError::Edit(EditError::Conflict { .. })) => {
            eprintln!("eks-auth: {name}: {e} (--replace replaces it)");
            return 2;
        }
        Err(e) => {
            eprintln!("eks-auth: {name}: {e}");
            return 2;
        }
    };
    for n in &result.notes {
        eprintln!("eks-auth: note: {n}");
    }
    let out = std::io::stdout();
    let mut stdout = out.lock();
    if opts.dry_run {
        let (a, b) = if path.as_os_str() == "-" {
            ("a/<stdin>".to_string(), "b/<stdin>".to_string())
        } else {
            (format!("a/{name}"), format!("b/{name}"))
        };
        let _ = stdout.write_all(unified_diff(&text, &result.text, &a, &b).as_bytes());
        return 0;
    }
    if opts.in_place {
        return match write_atomic(path, result.text.as_bytes()) {
            Ok(()) => {
                eprintln!("eks-auth: {} updated ({})", name, result.kind.data_key());
                0
            }
            Err(e) => {
                eprintln!("eks-auth: cannot write {name}: {e}");
                2
            }
        };
    }
    match stdout.write_all(result.text.as_bytes()) {
        Ok(()) => 0,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            eprintln!("eks-auth: {e}");
            2
        }
    }
}

/// Replaces `path` (a symlink's target) with `bytes`: a temporary file beside it, synced, given the original's
/// permissions, then renamed over it, so a reader sees the old or the new file, never half of one.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let real = std::fs::canonicalize(path)?;
    let dir = real.parent().unwrap_or(Path::new("."));
    let name = real
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let perms = std::fs::metadata(&real)?.permissions();
    let tmp = dir.join(format!(".{name}.eks-auth-{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::set_permissions(&tmp, perms)?;
        std::fs::rename(&tmp, &real)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
