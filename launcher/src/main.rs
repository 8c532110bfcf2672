//! The CNB launcher: the entrypoint of every strata image.
//!
//! It picks a process ([`select`]), builds its environment from the container's and the launch
//! layers' ([`launch_env`]), runs exec.d programs ([`execd`]), and then replaces itself with
//! the process, directly ([`exec`]) or through a shell that sources profile scripts
//! ([`shell`]). Errors before that are printed to stderr with the platform spec's exit codes
//! ([`error`]); after it, the exit code is the process's own.

mod api;
mod error;
mod exec;
mod execd;
mod launch_env;
mod layers;
mod metadata;
mod select;
mod shell;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use error::LaunchError;

fn main() -> ExitCode {
    let err = launch();
    eprintln!("ERROR: failed to launch: {}", report(&err));
    ExitCode::from(u8::try_from(err.code()).unwrap_or(1))
}

/// The error and its causes on one line.
fn report(err: &LaunchError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn var(name: &str) -> Option<String> {
    std::env::var_os(name)
        .and_then(|v| v.into_string().ok())
        .filter(|v| !v.is_empty())
}

/// Launches the process; returns only on failure.
fn launch() -> LaunchError {
    match prepare() {
        Ok(err) | Err(err) => err,
    }
}

fn prepare() -> Result<LaunchError, LaunchError> {
    let mut raw_args = Vec::new();
    for arg in std::env::args_os() {
        raw_args.push(
            arg.into_string()
                .map_err(|a| LaunchError::NonUtf8Arg(a.to_string_lossy().into_owned()))?,
        );
    }
    let (argv0, args) = raw_args
        .split_first()
        .map_or(("launcher", &[][..]), |(a, r)| (a.as_str(), r));

    let layers_dir = PathBuf::from(var("CNB_LAYERS_DIR").unwrap_or_else(|| "/layers".to_owned()));
    let app_dir = PathBuf::from(var("CNB_APP_DIR").unwrap_or_else(|| "/workspace".to_owned()));
    let platform = match var("CNB_PLATFORM_API") {
        Some(v) => api::Api::parse(&v).ok_or(LaunchError::PlatformApi(v))?,
        None => api::NEWEST,
    };
    let md = metadata::Metadata::read(&layers_dir.join("config").join("metadata.toml"))?;
    for bp in &md.buildpacks {
        if api::Api::parse(&bp.api).is_none() {
            return Err(LaunchError::BuildpackApi {
                buildpack: bp.id.clone(),
                api: bp.api.clone(),
            });
        }
    }
    let process_type = var("CNB_PROCESS_TYPE");
    let exec_env = var("CNB_EXEC_ENV").unwrap_or_else(|| "production".to_owned());
    let selected = select::select(
        &md,
        &select::Request {
            argv0,
            args,
            process_type: process_type.as_deref(),
            platform,
            exec_env: &exec_env,
        },
    )?;
    let process = selected.process_type.as_deref();

    // exec.d programs and profile scripts run in the app directory.
    std::env::set_current_dir(&app_dir).map_err(|source| LaunchError::Chdir {
        path: app_dir.clone(),
        source,
    })?;
    let buildpacks = layers::launch_layers(&layers_dir, &md)?;
    let mut env = launch_env::base_env(std::env::vars_os().collect::<Vec<(OsString, OsString)>>());
    launch_env::apply_layers(&mut env, &buildpacks, process)?;
    for program in execd::programs(&buildpacks, process)? {
        execd::run(&program, &mut env, &app_dir)?;
    }

    let working_dir = selected
        .working_dir
        .as_deref()
        .map_or_else(|| app_dir.clone(), |dir| app_dir.join(dir));
    if selected.direct {
        let program = exec::look_path(&selected.command, env.get("PATH").unwrap_or_default())?;
        let mut command = vec![selected.command];
        command.extend(selected.args);
        return Ok(exec::exec(&program, &command, &env, &working_dir));
    }
    let shell = shell::Shell::find();
    let profiles = shell::profiles(&buildpacks, process, &app_dir)?;
    let shell_argv = shell::argv(
        shell,
        &profiles,
        &working_dir,
        argv0,
        &selected.command,
        &selected.args,
    );
    // The shell starts in the app directory and changes to the working directory itself.
    Ok(exec::exec(
        Path::new(shell.path()),
        &shell_argv,
        &env,
        &app_dir,
    ))
}
