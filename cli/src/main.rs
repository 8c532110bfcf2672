//! The `strata` command: parses arguments, runs a command, renders what it returns, and
//! exits with a documented code (0 ok, 1 build or rebase failure, 2 bad input or usage).

mod args;
mod build;
mod cache;
mod config;
mod error;
mod inspect;
mod plan;
mod prepare;
mod progress;
mod rebase;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command, PlanFormat};
use crate::error::{CliError, EXIT_OK, EXIT_USAGE};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(err) => {
            let code = err.exit_code();
            eprintln!("{:?}", miette::Report::new(err));
            ExitCode::from(code)
        }
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Build(args) => {
            let config = build::BuildConfig::from_args(&args)?;
            let progress = progress::Progress::new(args.json);
            let report = build::run(&config, &progress)?;
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
            } else {
                let mut err = std::io::stderr().lock();
                for layer in &report.layers {
                    if !layer.created_by.is_empty() {
                        let _ = writeln!(
                            err,
                            "    {} {}",
                            &layer.diff_id[..19.min(layer.diff_id.len())],
                            layer.created_by
                        );
                    }
                }
                println!("{} {}", report.image, report.digest);
            }
            Ok(())
        }
        Command::Plan(args) => {
            let config = config::InputConfig::from_args(&args.input)?;
            let prepared = prepare::prepare(&config)?;
            match args.format {
                PlanFormat::Table => print!("{}", plan::table(&prepared.plan)),
                PlanFormat::Json => println!("{}", plan::json(&prepared)),
                PlanFormat::Dot => print!("{}", plan::dot(&prepared.plan)),
            }
            Ok(())
        }
        Command::Inspect(args) => {
            let reference = strata_exporter::reference::ImageRef::parse(&args.image)?;
            let report = strata_exporter::inspect::inspect(&reference)?;
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
    }
}
