//! The buildpack's exec.d program: the launcher runs it before each process and sets in the
//! process's env what it writes to fd 3, through libcnb's exec.d helper.
//!
//! It sets `COUNTER_EXECD` to the number of builds its layer's `builds.log` records, read at
//! launch from the layer it was copied into (`<layer>/exec.d/counter-execd`), so that a process
//! shows both that the program ran and that it ran against the image's layer.

use std::path::PathBuf;
use std::process::ExitCode;

use libcnb::data::exec_d_program_output_key;
use libcnb::exec_d::write_exec_d_program_output;

/// The log the build writes in the layer, one line per build.
const BUILDS_LOG: &str = "builds.log";

fn main() -> ExitCode {
    match builds() {
        Ok(builds) => {
            write_exec_d_program_output([(
                exec_d_program_output_key!("COUNTER_EXECD"),
                builds.to_string(),
            )]);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("libcnb-counter exec.d: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The lines in the layer's `builds.log`.
fn builds() -> Result<usize, String> {
    let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
    let log: PathBuf = exe
        .parent()
        .and_then(std::path::Path::parent)
        .ok_or_else(|| format!("{} is not in a layer's exec.d/", exe.display()))?
        .join(BUILDS_LOG);
    let text = std::fs::read_to_string(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    Ok(text.lines().count())
}
