//! A declared layer's `run` script: one layer, built from exactly what it declares.
//!
//! The script runs with the app's source at `/workspace`, read-only, its own layer directory (empty) as its first
//! argument and in `STRATA_LAYER_DIR`, and only the layers it `needs` mounted, read-only, at
//! their image paths, with their build env (`bin` on `PATH`, `env.build/`, …). Of the user
//! env it sees only the variables it names in `env`: those are part of its key, so nothing
//! else may change what it builds. They go on top of its needs' env by the rules a buildpack
//! has (a user value wins; a path variable's is prepended). It sees no service binding.

use std::fs;
use std::sync::Arc;

use strata_planner::{Buildpack, BuildpackPlan, DeclaredLayer, safepath};

use crate::build::{
    BuildError, BuildRequest, BuildpackOutput, WORKSPACE_TARGET, describe_exit, layer_target,
    run_logged,
};
use crate::detect::{PLATFORM_TARGET, buildpack_target};
use crate::env::{Phase, layer_env};
use crate::layers::{
    BuildpackLayers, LaunchToml, Layer, LayerTypes, Process, SbomFile, SbomScope, sbom_media_type,
};
use crate::platform::{platform_env, process_env, sandbox_base_env};
use crate::sandbox::{Mount, Purpose, SandboxCommand};
use crate::untrusted::{SBOM_LIMIT, UntrustedError};

/// A layer a declared layer needs, already built.
#[derive(Debug, Clone)]
pub struct NeededLayer<'a> {
    /// The buildpack it belongs to.
    pub buildpack: &'a Buildpack,
    /// The layer.
    pub layer: &'a Layer,
}

/// A built declared layer, with the SBOM files its script wrote.
#[derive(Debug, Clone)]
pub struct BuiltLayer {
    /// `id@version` of the buildpack that declares it.
    pub buildpack: String,
    /// The layer.
    pub layer: Layer,
    /// Its SBOM files (`sbom.<ext>.json` in `STRATA_SBOM_DIR`).
    pub sbom: Vec<SbomFile>,
    /// Its script's log.
    pub log: std::path::PathBuf,
}

/// Runs `layer`'s script into a fresh `<scratch>/layers/<buildpack>/<layer>`.
///
/// The script may also write `sbom.cdx.json`, `sbom.spdx.json` or `sbom.syft.json` into
/// `STRATA_SBOM_DIR`: the layer's SBOM, in formats the buildpack declares.
pub fn run_layer(
    req: &BuildRequest<'_>,
    buildpack: &Buildpack,
    layer: &DeclaredLayer,
    needs: &[NeededLayer<'_>],
    inputs: &[String],
) -> Result<BuiltLayer, BuildError> {
    let escaped = buildpack.id().escaped();
    let dir = req.scratch.join("layers").join(&escaped).join(&layer.name);
    let sbom_dir = req.scratch.join("sbom").join(&escaped).join(&layer.name);
    for d in [&dir, &sbom_dir] {
        if d.exists() {
            fs::remove_dir_all(d).map_err(|source| BuildError::Io {
                path: d.clone(),
                source,
            })?;
        }
        fs::create_dir_all(d).map_err(|source| BuildError::Io {
            path: d.clone(),
            source,
        })?;
    }

    let platform = req.platform.path().map_err(|source| BuildError::Io {
        path: dir.clone(),
        source,
    })?;
    let mut mounts = vec![
        Mount::private(platform, PLATFORM_TARGET),
        Mount::ro(&buildpack.dir, buildpack_target(buildpack)),
        Mount::rw(&dir, layer_target(buildpack, &layer.name)),
        Mount::rw(&sbom_dir, "/tmp/sbom"),
    ];
    let [platform, bp_dir, layer_dir, sbom] = [0, 1, 2, 3].map(|i| req.sandbox.view(&mounts[i]));
    // In the sandbox, /workspace holds the layer's input files and nothing else, read-only:
    // what its key does not cover, it cannot read. Without isolation it is the whole app.
    let (workspace, sealed) = if req.sandbox.isolates() {
        mounts.extend(input_mounts(req.source, buildpack, layer, inputs)?);
        (
            WORKSPACE_TARGET.to_owned(),
            vec![WORKSPACE_TARGET.to_owned()],
        )
    } else {
        let mount = Mount::ro(req.source, WORKSPACE_TARGET);
        (req.sandbox.view(&mount), Vec::new())
    };

    let mut earlier = Vec::new();
    for need in needs {
        let mount = Mount::ro(
            &need.layer.dir,
            layer_target(need.buildpack, &need.layer.name),
        );
        let view = req.sandbox.view(&mount);
        mounts.push(mount);
        earlier.extend(layer_env(&need.layer.dir, &view, Phase::Build)?);
    }
    let mut env = process_env(
        sandbox_base_env(req.sandbox),
        &earlier,
        &declared_env(req, layer),
    );
    // The operator env is the builder's, like the build image's env: the build image key in
    // every task key covers it.
    env.apply(req.platform.operator_env());
    env.extend(platform_env(req.target, None));
    env.set("CNB_BUILDPACK_DIR", &bp_dir);
    env.set("CNB_PLATFORM_DIR", &platform);
    env.set("CNB_EXEC_ENV", req.exec_env);
    env.set("STRATA_LAYER_DIR", &layer_dir);
    env.set("STRATA_SBOM_DIR", &sbom);

    let cmd = SandboxCommand {
        argv: vec![format!("{bp_dir}/{}", layer.run), layer_dir],
        env: env.into_vec(),
        mounts,
        sealed,
        cwd: workspace,
        network: req.network && layer.network,
        purpose: Purpose::Build,
    };
    let (finished, log) = run_logged(req, &cmd, &format!("layer-{escaped}-{}", layer.name))?;
    if !finished.status.success() {
        return Err(BuildError::LayerFailed {
            layer: format!("{}:{}", buildpack.reference(), layer.name),
            exit: describe_exit(finished.status),
            log,
            tail: finished.tail,
        });
    }
    crate::env::check_env_files(&dir).map_err(|source| {
        BuildError::Layers(crate::layers::LayerError::Env {
            buildpack: buildpack.reference(),
            layer: layer.name.clone(),
            source,
        })
    })?;
    Ok(BuiltLayer {
        buildpack: buildpack.reference(),
        sbom: layer_sbom(buildpack, &layer.name, &sbom_dir)?,
        log,
        layer: Layer {
            name: layer.name.clone(),
            dir,
            types: LayerTypes {
                launch: layer.launch,
                build: layer.build,
                cache: layer.cache,
            },
            metadata: toml::Table::new(),
            blob: None,
        },
    })
}

/// Of the user env, only what the layer declares: its key covers those.
fn declared_env(req: &BuildRequest<'_>, layer: &DeclaredLayer) -> Vec<(String, String)> {
    req.platform
        .env
        .iter()
        .filter(|(k, _)| layer.env.contains(k))
        .cloned()
        .collect()
}

/// The read-only mounts of a layer's input files at `/workspace/<input>`.
fn input_mounts(
    source: &std::path::Path,
    buildpack: &Buildpack,
    layer: &DeclaredLayer,
    inputs: &[String],
) -> Result<Vec<Mount>, BuildError> {
    inputs
        .iter()
        .map(|input| {
            let host =
                input_host_path(source, input).map_err(|message| BuildError::LayerInput {
                    layer: format!("{}:{}", buildpack.reference(), layer.name),
                    message,
                })?;
            Ok(Mount::ro(host, format!("{WORKSPACE_TARGET}/{input}")))
        })
        .collect()
}

/// What to bind at `/workspace/<input>`: the file itself, or for a symlink the file inside
/// the app it leads to (the plan's key covers that file), never anything outside the app. A
/// bind follows links, so the link is resolved here, where where it leads is checked.
fn input_host_path(source: &std::path::Path, input: &str) -> Result<std::path::PathBuf, String> {
    let rel = safepath::relative(input).map_err(|e| e.to_string())?;
    safepath::no_link_on_the_way(source, &rel).map_err(|e| e.to_string())?;
    let path = source.join(&rel);
    let is_link = fs::symlink_metadata(&path)
        .map_err(|e| format!("`{input}`: {e}"))?
        .file_type()
        .is_symlink();
    if !is_link {
        return Ok(path);
    }
    let target = safepath::resolve_inside(source, input).map_err(|e| format!("symlink {e}"))?;
    if !target.is_file() {
        return Err(format!("symlink `{input}` does not lead to a file"));
    }
    Ok(target)
}

/// The SBOM files a layer script wrote, checked against the buildpack's `sbom-formats`.
fn layer_sbom(
    buildpack: &Buildpack,
    layer: &str,
    dir: &std::path::Path,
) -> Result<Vec<SbomFile>, BuildError> {
    let mut files = Vec::new();
    let entries = fs::read_dir(dir).map_err(|source| BuildError::Io {
        path: dir.to_owned(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| BuildError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let path = entry.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let ext = name
            .strip_prefix("sbom.")
            .and_then(|n| n.strip_suffix(".json"))
            .unwrap_or_default();
        let reference = format!("{}:{layer}", buildpack.reference());
        let Some(media_type) = sbom_media_type(ext) else {
            return Err(BuildError::LayerSbom {
                layer: reference,
                message: format!("`{name}` is not sbom.cdx.json, sbom.spdx.json or sbom.syft.json"),
            });
        };
        if !buildpack
            .descriptor
            .info
            .sbom_formats
            .iter()
            .any(|f| f == media_type)
        {
            return Err(BuildError::LayerSbom {
                layer: reference,
                message: format!(
                    "`{name}` is {media_type}, which the buildpack does not declare in `sbom-formats`"
                ),
            });
        }
        // Read on the host later: never a link, a FIFO or more than strata reads.
        let too_big = crate::untrusted::open(&path)
            .and_then(|f| {
                f.metadata().map_err(|source| UntrustedError::Io {
                    path: path.clone(),
                    source,
                })
            })
            .map_err(|e| BuildError::LayerSbom {
                layer: reference.clone(),
                message: e.to_string(),
            })?
            .len()
            > SBOM_LIMIT;
        if too_big {
            return Err(BuildError::LayerSbom {
                layer: reference,
                message: format!("`{name}` is larger than {SBOM_LIMIT} bytes"),
            });
        }
        let bytes =
            crate::untrusted::read(&path, SBOM_LIMIT).map_err(|e| BuildError::LayerSbom {
                layer: reference.clone(),
                message: e.to_string(),
            })?;
        if let Err(reason) = crate::sbomshape::check(ext, &bytes) {
            return Err(BuildError::LayerSbom {
                layer: reference,
                message: format!(
                    "SBOM file {} is not a valid `{ext}` SBOM: {reason}",
                    path.display()
                ),
            });
        }
        files.push(SbomFile {
            scope: SbomScope::Layer(layer.to_owned()),
            ext: ext.to_owned(),
            path,
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// What a buildpack built from declared layers looks like to the exporter: its layers in
/// name order and its declared processes.
pub fn declared_output(
    req: &BuildRequest<'_>,
    buildpack: &Arc<Buildpack>,
    plan: &BuildpackPlan,
    built: Vec<BuiltLayer>,
) -> BuildpackOutput {
    let mut sbom: Vec<SbomFile> = built.iter().flat_map(|b| b.sbom.iter().cloned()).collect();
    sbom.sort_by(|a, b| a.path.cmp(&b.path));
    let mut layers: Vec<Layer> = built.into_iter().map(|b| b.layer).collect();
    layers.sort_by(|a, b| a.name.cmp(&b.name));
    let processes = buildpack
        .descriptor
        .strata
        .as_ref()
        .map(|s| s.processes.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|p| Process {
            r#type: p.kind.clone(),
            command: p.command.clone(),
            args: p.args.clone(),
            direct: true,
            default: p.default,
            working_dir: p.working_dir.clone(),
            exec_env: p.exec_env.clone(),
        })
        .collect();
    BuildpackOutput {
        buildpack: Arc::clone(buildpack),
        plan: plan.clone(),
        layers_dir: req.scratch.join("layers").join(buildpack.id().escaped()),
        layers: BuildpackLayers {
            layers,
            launch: LaunchToml {
                labels: Vec::new(),
                processes,
                slices: Vec::new(),
            },
            unmet: Vec::new(),
            store: None,
            sbom,
        },
        log: req.scratch.join("logs"),
        app_changed: false,
        change: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::LayerError;
    use crate::platform::{PlatformDir, TargetEnv};
    use crate::sandbox::Sandbox;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_layer_script_sees_only_what_it_declares() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let bp_dir = root.join("bp");
        fs::create_dir_all(bp_dir.join("layers")).unwrap();
        fs::write(
            bp_dir.join("buildpack.toml"),
            "api = \"0.10\"\n[buildpack]\nid = \"t/bp\"\nversion = \"1\"\n\
             [[metadata.strata.layers]]\nname = \"base\"\nrun = \"layers/base.sh\"\nbuild = true\n\
             [[metadata.strata.layers]]\nname = \"other\"\nrun = \"layers/base.sh\"\n\
             [[metadata.strata.layers]]\nname = \"top\"\nneeds = [\"base\"]\nenv = [\"SEEN\"]\nrun = \"layers/top.sh\"\n",
        )
        .unwrap();
        let scripts = [
            (
                "base.sh",
                "mkdir -p \"$1/bin\" && printf '#!/bin/sh\\necho tool\\n' > \"$1/bin/tool\" && chmod +x \"$1/bin/tool\"",
            ),
            (
                "top.sh",
                "{ tool; ls /layers/t_bp; echo \"SEEN=$SEEN HIDDEN=${HIDDEN:-}\"; find /workspace | sort; \
                 touch /workspace/x 2>/dev/null || echo ro; touch /layers/t_bp/base/x 2>/dev/null || echo ro; } > \"$STRATA_LAYER_DIR/out\"",
            ),
        ];
        for (name, body) in scripts {
            let path = bp_dir.join("layers").join(name);
            fs::write(&path, format!("#!/bin/sh\nset -e\n{body}\n")).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let buildpack = Buildpack::load(&bp_dir).unwrap();
        let strata = buildpack.descriptor.strata.clone().unwrap();
        let workspace = root.join("ws");
        fs::create_dir_all(workspace.join("src")).unwrap();
        fs::write(workspace.join("src/input.txt"), "read me").unwrap();
        fs::write(workspace.join("secret.txt"), "not declared").unwrap();
        let env = [
            ("SEEN".to_owned(), "yes".to_owned()),
            ("HIDDEN".to_owned(), "no".to_owned()),
        ];
        let platform = PlatformDir::create(&root.join("platform"), &env).unwrap();
        let sandbox = Sandbox::bwrap().expect("bwrap is installed (apt-get install bubblewrap)");
        let req = BuildRequest {
            sandbox: &sandbox,
            source: &workspace,
            workspace: &workspace,
            platform: &platform,
            target: &TargetEnv::host(),
            scratch: &root.join("scratch"),
            network: false,
            exec_env: "production",
        };
        let base = run_layer(&req, &buildpack, strata.layer("base").unwrap(), &[], &[]).unwrap();
        run_layer(&req, &buildpack, strata.layer("other").unwrap(), &[], &[]).unwrap();
        let needs = [NeededLayer {
            buildpack: &buildpack,
            layer: &base.layer,
        }];
        let inputs = ["src/input.txt".to_owned()];
        let top = run_layer(
            &req,
            &buildpack,
            strata.layer("top").unwrap(),
            &needs,
            &inputs,
        )
        .unwrap();
        let out = fs::read_to_string(top.layer.dir.join("out")).unwrap();
        assert_eq!(
            out,
            "tool\nbase\ntop\nSEEN=yes HIDDEN=\n/workspace\n/workspace/src\n/workspace/src/input.txt\nro\nro\n",
            "needs on PATH, no `other`, declared env only, declared inputs only, read-only"
        );
        assert!(!workspace.join("x").exists());
    }

    #[test]
    fn a_layer_script_gets_the_users_declared_values_over_what_its_needs_set() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let bp_dir = root.join("bp");
        fs::create_dir_all(bp_dir.join("layers")).unwrap();
        fs::write(
            bp_dir.join("buildpack.toml"),
            "api = \"0.10\"\n[buildpack]\nid = \"t/bp\"\nversion = \"1\"\n\
             [[metadata.strata.layers]]\nname = \"base\"\nrun = \"layers/base.sh\"\nbuild = true\n\
             [[metadata.strata.layers]]\nname = \"top\"\nneeds = [\"base\"]\nenv = [\"MODE\", \"PATH\"]\nrun = \"layers/top.sh\"\n",
        )
        .unwrap();
        let scripts = [
            (
                "base.sh",
                "mkdir -p \"$1/bin\" \"$1/env.build\" && printf '#!/bin/sh\\necho tool\\n' > \"$1/bin/tool\" \
                 && chmod +x \"$1/bin/tool\" && printf buildpack > \"$1/env.build/MODE.override\"",
            ),
            (
                "top.sh",
                "echo \"MODE=$MODE PATH=$PATH $(tool) api=$CNB_PLATFORM_API\" > \"$STRATA_LAYER_DIR/out\"",
            ),
        ];
        for (name, body) in scripts {
            let path = bp_dir.join("layers").join(name);
            fs::write(&path, format!("#!/bin/sh\nset -e\n{body}\n")).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let buildpack = Buildpack::load(&bp_dir).unwrap();
        let strata = buildpack.descriptor.strata.clone().unwrap();
        let workspace = root.join("ws");
        fs::create_dir_all(&workspace).unwrap();
        let env = [
            ("MODE".to_owned(), "user".to_owned()),
            ("PATH".to_owned(), "/x".to_owned()),
        ];
        let platform = PlatformDir::create(&root.join("platform"), &env).unwrap();
        let sandbox = Sandbox::bwrap().expect("bwrap is installed (apt-get install bubblewrap)");
        let req = BuildRequest {
            sandbox: &sandbox,
            source: &workspace,
            workspace: &workspace,
            platform: &platform,
            target: &TargetEnv::host(),
            scratch: &root.join("scratch"),
            network: false,
            exec_env: "production",
        };
        let base = run_layer(&req, &buildpack, strata.layer("base").unwrap(), &[], &[]).unwrap();
        let needs = [NeededLayer {
            buildpack: &buildpack,
            layer: &base.layer,
        }];
        let top = run_layer(&req, &buildpack, strata.layer("top").unwrap(), &needs, &[]).unwrap();
        assert_eq!(
            fs::read_to_string(top.layer.dir.join("out")).unwrap(),
            format!(
                "MODE=user PATH=/x:/layers/t_bp/base/bin:{} tool api={}\n",
                crate::sandbox::DEFAULT_PATH,
                crate::platform::PLATFORM_API
            )
        );
    }

    /// A declared buildpack whose one layer `cat`s `/workspace/<input>` into `$1/out`, and an
    /// app `ws` with `real.lock` in it and `secret` beside it; `link` is made `ws/a.lock`.
    fn run_with_link(link: &str) -> (tempfile::TempDir, Result<BuiltLayer, BuildError>) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let bp_dir = root.join("bp");
        fs::create_dir_all(bp_dir.join("layers")).unwrap();
        fs::write(
            bp_dir.join("buildpack.toml"),
            "api = \"0.10\"\n[buildpack]\nid = \"t/bp\"\nversion = \"1\"\n\
             [[metadata.strata.layers]]\nname = \"deps\"\ninputs = [\"a.lock\"]\nrun = \"layers/deps.sh\"\n",
        )
        .unwrap();
        let script = bp_dir.join("layers/deps.sh");
        fs::write(
            &script,
            "#!/bin/sh\ncat /workspace/a.lock > \"$1/out\" 2>&1 || true\n",
        )
        .unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        let buildpack = Buildpack::load(&bp_dir).unwrap();
        let strata = buildpack.descriptor.strata.clone().unwrap();
        let workspace = root.join("ws");
        fs::create_dir_all(&workspace).unwrap();
        fs::write(workspace.join("real.lock"), "inside").unwrap();
        fs::write(root.join("secret"), "host secret").unwrap();
        let link = link.replace("$OUT", &root.join("secret").to_string_lossy());
        std::os::unix::fs::symlink(link, workspace.join("a.lock")).unwrap();
        let platform = PlatformDir::create(&root.join("platform"), &[]).unwrap();
        let sandbox = Sandbox::bwrap().expect("bwrap is installed (apt-get install bubblewrap)");
        let req = BuildRequest {
            sandbox: &sandbox,
            source: &workspace,
            workspace: &workspace,
            platform: &platform,
            target: &TargetEnv::host(),
            scratch: &root.join("scratch"),
            network: false,
            exec_env: "production",
        };
        let inputs = ["a.lock".to_owned()];
        let built = run_layer(
            &req,
            &buildpack,
            strata.layer("deps").unwrap(),
            &[],
            &inputs,
        );
        (tmp, built)
    }

    #[test]
    fn an_input_linking_outside_the_app_is_never_mounted() {
        for link in ["$OUT", "../secret"] {
            let (_tmp, built) = run_with_link(link);
            match built {
                Err(BuildError::LayerInput { layer, message }) => {
                    assert_eq!(layer, "t/bp@1:deps");
                    assert!(message.contains("a.lock"), "{message}");
                }
                Ok(built) => panic!(
                    "{link}: built, the script read {:?}",
                    fs::read_to_string(built.layer.dir.join("out"))
                ),
                Err(e) => panic!("{link}: {e}"),
            }
        }
    }

    /// Runs a declared layer whose script is `body` (`$1` its layer dir), in the sandbox.
    fn run_script(body: &str) -> Result<BuiltLayer, BuildError> {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let bp_dir = root.join("bp");
        fs::create_dir_all(bp_dir.join("layers")).unwrap();
        fs::write(
            bp_dir.join("buildpack.toml"),
            "api = \"0.10\"\n[buildpack]\nid = \"t/bp\"\nversion = \"1\"\n\
             sbom-formats = [\"application/vnd.cyclonedx+json\"]\n\
             [[metadata.strata.layers]]\nname = \"evil\"\nrun = \"layers/evil.sh\"\nlaunch = true\n",
        )
        .unwrap();
        let script = bp_dir.join("layers/evil.sh");
        fs::write(&script, format!("#!/bin/sh\nset -e\n{body}\n")).unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        let buildpack = Buildpack::load(&bp_dir).unwrap();
        let strata = buildpack.descriptor.strata.clone().unwrap();
        let workspace = root.join("ws");
        fs::create_dir_all(&workspace).unwrap();
        let platform = PlatformDir::create(&root.join("platform"), &[]).unwrap();
        let sandbox = Sandbox::bwrap().expect("bwrap is installed (apt-get install bubblewrap)");
        let req = BuildRequest {
            sandbox: &sandbox,
            source: &workspace,
            workspace: &workspace,
            platform: &platform,
            target: &TargetEnv::host(),
            scratch: &root.join("scratch"),
            network: false,
            exec_env: "production",
        };
        run_layer(&req, &buildpack, strata.layer("evil").unwrap(), &[], &[])
    }

    #[test]
    fn links_a_layer_script_leaves_for_the_host_are_refused() {
        let env =
            run_script("mkdir -p \"$1/env.launch\"\nln -s /proc/self/environ \"$1/env.launch/X\"");
        match env {
            Err(e @ BuildError::Layers(LayerError::Env { .. })) => {
                let text = e.to_string();
                assert!(
                    text.contains("t/bp@1") && text.contains("env.launch/X"),
                    "{text}"
                );
            }
            other => panic!("{other:?}"),
        }
        let sbom = run_script("ln -s /etc/hostname \"$STRATA_SBOM_DIR/sbom.cdx.json\"");
        match sbom {
            Err(BuildError::LayerSbom { layer, message }) => {
                assert_eq!(layer, "t/bp@1:evil");
                assert!(message.contains("symlink"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_input_linking_inside_the_app_reads_its_target() {
        let (_tmp, built) = run_with_link("real.lock");
        let out = fs::read_to_string(built.unwrap().layer.dir.join("out")).unwrap();
        assert_eq!(out, "inside");
    }
}
