//! The `strata` command: parses arguments, runs a command, renders what it returns, and
//! exits with a documented code (0 ok, 1 build or rebase failure, 2 bad input or usage, 130
//! or 143 stopped by SIGINT or SIGTERM, see `signals`).

mod args;
mod attach;
mod attest;
mod build;
mod builder;
mod cache;
mod check;
mod config;
mod error;
mod images;
mod inspect;
mod key;
mod plan;
mod prepare;
mod profile;
mod progress;
mod publish;
mod rebase;
mod registryrebase;
mod remotecache;
mod report;
mod run;
mod sbom;
mod sign;
mod signals;
mod uptodate;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command, PlanFormat};
use crate::error::{CliError, EXIT_OK, EXIT_USAGE};

fn main() -> ExitCode {
    if let Err(e) = signals::install() {
        eprintln!(
            "warning: cannot handle SIGINT and SIGTERM ({e}): a stopped build leaves its scratch files"
        );
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    let result = run(cli);
    signals::wait_if_stopping();
    match result {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(err) => {
            let code = err.exit_code();
            // A process `strata run` started has said itself why it failed.
            if !matches!(err, CliError::Exited { .. }) {
                eprintln!("{:?}", miette::Report::new(err));
            }
            ExitCode::from(code)
        }
    }
}

/// Prints what the workspace file has to say (a glob that matched nothing).
fn warn(config: &config::InputConfig) {
    for warning in config.workspace.iter().flat_map(|w| &w.warnings) {
        eprintln!("warning: {warning}");
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Build(args) if args.check => check::run(&args),
        Command::Build(args) => {
            let config = build::BuildConfig::from_args(&args)?;
            warn(&config.input);
            let progress = progress::Progress::new(args.json);
            let (report, error) = build::run(&config, &progress)?;
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
            } else if let Some(image) = &report.single {
                let mut err = std::io::stderr().lock();
                for layer in &image.layers {
                    if !layer.created_by.is_empty() {
                        let _ = writeln!(
                            err,
                            "    {} {}",
                            &layer.diff_id[..19.min(layer.diff_id.len())],
                            layer.created_by
                        );
                    }
                }
                if let Some(service) = report.services.first()
                    && service.status == "up-to-date"
                {
                    let _ = if service.ran == 0 {
                        writeln!(
                            err,
                            "up to date: nothing it reads changed ({} tasks cached, none ran)",
                            service.cached
                        )
                    } else {
                        writeln!(
                            err,
                            "up to date: every layer came out unchanged ({} tasks ran, {} cached)",
                            service.ran, service.cached
                        )
                    };
                }
                println!("{} {}", image.image, image.digest);
            } else {
                print!("{}", report::table(&report));
            }
            error.map_or(Ok(()), Err)
        }
        Command::Plan(args) => {
            let mut config = config::InputConfig::from_args(&args.input)?;
            // The keys the build will have: its run image names as its output records them.
            if let Some(layout) = config.output_layout(args.output.as_deref())? {
                config.record_run_images_from(&layout);
            }
            warn(&config);
            let prepared = prepare::prepare(&config, false, None)?;
            for warning in prepare::detect_warnings(&prepared, config.workspace.is_some()) {
                eprintln!("{warning}");
            }
            match args.format {
                PlanFormat::Table => print!("{}", plan::table(&prepared.plan)),
                PlanFormat::Json => println!("{}", plan::json(&prepared, config.shard)),
                PlanFormat::Dot => print!("{}", plan::dot(&prepared.plan)),
            }
            Ok(())
        }
        Command::Inspect(args) => {
            let report = inspect::inspect_any(&args)?;
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
            } else {
                print!("{}", inspect::render(&report));
            }
            Ok(())
        }
        Command::Rebase(args) => rebase::run(&args),
        Command::Cache(args) => cache::run(&args),
        Command::Builder(args) => builder::run(&args),
        Command::Key(args) => key::run(&args),
        Command::Sign(args) => sign::run_sign(&args),
        Command::VerifySignature(args) => sign::run_verify(&args),
        Command::Run(args) => match run::run(&args) {
            Ok(0) => Ok(()),
            Ok(code) => Err(CliError::Exited { code }),
            Err(err) => Err(CliError::NotStarted(Box::new(err))),
        },
        Command::Sbom(args) => sbom::run(&args),
    }
}
