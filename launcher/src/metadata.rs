//! `<layers>/config/metadata.toml`: the processes and buildpacks the exporter recorded.

use std::path::Path;

use serde::Deserialize;

use crate::error::LaunchError;

/// The launch metadata, as the lifecycle's `launch.Metadata` reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct Metadata {
    #[serde(default)]
    pub(crate) processes: Vec<Process>,
    #[serde(default)]
    pub(crate) buildpacks: Vec<Buildpack>,
    /// The default process type as strata writes it; a process's own `default` also counts.
    #[serde(default)]
    pub(crate) buildpack_default_process_type: Option<String>,
}

/// One process type.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct Process {
    pub(crate) r#type: String,
    /// A string (before Platform API 0.10) or an array; read as an array either way.
    #[serde(deserialize_with = "command")]
    pub(crate) command: Vec<String>,
    #[serde(default)]
    pub(crate) args: Vec<String>,
    #[serde(default)]
    pub(crate) direct: bool,
    #[serde(default)]
    pub(crate) default: bool,
    #[serde(default)]
    pub(crate) buildpack_id: String,
    #[serde(default)]
    pub(crate) working_dir: Option<String>,
    #[serde(default)]
    pub(crate) exec_env: Vec<String>,
}

/// One buildpack of the group, in the order its layers apply.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Buildpack {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) api: String,
}

fn command<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Command {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Command::deserialize(d)? {
        Command::One(s) => vec![s],
        Command::Many(v) => v,
    })
}

impl Metadata {
    /// Reads the metadata from `path`.
    pub(crate) fn read(path: &Path) -> Result<Self, LaunchError> {
        let text = std::fs::read_to_string(path).map_err(|source| LaunchError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    pub(crate) fn parse(path: &Path, text: &str) -> Result<Self, LaunchError> {
        toml::from_str(text).map_err(|e| LaunchError::Metadata {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })
    }

    /// The default process type, if any.
    pub(crate) fn default_type(&self) -> Option<&str> {
        self.processes
            .iter()
            .rev()
            .find(|p| p.default)
            .map(|p| p.r#type.as_str())
            .or(self.buildpack_default_process_type.as_deref())
    }

    /// The buildpack with `id`.
    pub(crate) fn buildpack(&self, id: &str) -> Option<&Buildpack> {
        self.buildpacks.iter().find(|b| b.id == id)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_exporters_metadata_and_old_string_commands() {
        let md = Metadata::parse(
            Path::new("metadata.toml"),
            r#"
buildpack-default-process-type = "web"
[[buildpacks]]
id = "examples/node"
version = "1"
api = "0.10"
[[processes]]
type = "web"
command = ["node", "server.js"]
args = ["--port", "8080"]
direct = true
buildpack-id = "examples/node"
working-dir = "/workspace/app"
[[processes]]
type = "old"
command = "echo hi"
buildpack-id = "examples/node"
"#,
        )
        .unwrap();
        assert_eq!(md.default_type(), Some("web"));
        assert_eq!(md.processes[0].command, ["node", "server.js"]);
        assert_eq!(
            md.processes[0].working_dir.as_deref(),
            Some("/workspace/app")
        );
        assert_eq!(md.processes[1].command, ["echo hi"]);
        assert!(!md.processes[1].direct);
        assert_eq!(md.buildpack("examples/node").unwrap().api, "0.10");
    }

    #[test]
    fn bad_metadata_names_the_file() {
        let err = Metadata::parse(
            Path::new("/layers/config/metadata.toml"),
            "[[processes]]\ntype = 1\n",
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/layers/config/metadata.toml: "),
            "{err}"
        );
    }
}
