//! `strata key generate`: a signing key pair for `--sign-key` and `strata sign`.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use strata_exporter::signing::{Algorithm, generate};

use crate::error::CliError;

pub(crate) const KEY_EXAMPLES: &str = "Examples:
  strata key generate --output cosign.key
  strata key generate --output signing.pem --algorithm p256

Writes the private key (PKCS#8 PEM, mode 0600) to --output and its public key
(SubjectPublicKeyInfo PEM) next to it with the extension .pub. Existing files are never
overwritten.";

#[derive(Debug, Args)]
pub(crate) struct KeyArgs {
    #[command(subcommand)]
    pub(crate) command: KeyCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeyCommand {
    /// Make a new key pair.
    #[command(after_help = KEY_EXAMPLES)]
    Generate {
        /// Where the private key goes; the public key goes to the same path with `.pub`.
        #[arg(long, short = 'o', value_name = "KEY.pem")]
        output: PathBuf,
        /// The signature algorithm.
        #[arg(long, value_enum, default_value_t = AlgorithmArg::Ed25519)]
        algorithm: AlgorithmArg,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum AlgorithmArg {
    /// Ed25519.
    Ed25519,
    /// ECDSA on NIST P-256 with SHA-256.
    P256,
}

/// Writes `text` to a new file `path` with `mode`, refusing one that exists.
fn write_new(path: &Path, text: &str, mode: u32) -> Result<(), CliError> {
    let io = |source| CliError::Io {
        what: format!("cannot write {}", path.display()),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                CliError::Usage(format!(
                    "{} exists: strata never overwrites a key; choose another --output",
                    path.display()
                ))
            } else {
                io(e)
            }
        })?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}

/// `strata key`.
pub(crate) fn run(args: &KeyArgs) -> Result<(), CliError> {
    match &args.command {
        KeyCommand::Generate { output, algorithm } => {
            let public = output.with_extension("pub");
            if public == *output {
                return Err(CliError::Usage(format!(
                    "--output {}: the public key goes to KEY.pub; name the private key otherwise",
                    output.display()
                )));
            }
            if public.exists() {
                return Err(CliError::Usage(format!(
                    "{} exists: strata never overwrites a key; choose another --output",
                    public.display()
                )));
            }
            let algorithm = match algorithm {
                AlgorithmArg::Ed25519 => Algorithm::Ed25519,
                AlgorithmArg::P256 => Algorithm::P256,
            };
            let key = generate(algorithm)?;
            write_new(output, &key.private_pem, 0o600)?;
            write_new(&public, &key.public_pem, 0o644)?;
            eprintln!(
                "wrote {} ({algorithm} private key) and {} (public key {})",
                output.display(),
                public.display(),
                key.id
            );
            Ok(())
        }
    }
}
