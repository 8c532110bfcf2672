//! Output digests, for early cutoff.
//!
//! A task's action key ([`strata_planner::Plan::action_key`]) is made from its own definition
//! and the *output digest* of each task it needs, not their keys: a need that runs again and
//! comes out the same leaves its dependents cached, and the rebuild stops there. So the digest
//! covers everything a dependent can observe of a task's output, and nothing else (never where
//! it sits on this machine, nor its log): each layer's name, types, `[metadata]` and diffID
//! (its env files and content are in the tar), its SBOM files' content, and for an opaque
//! buildpack its `launch.toml`, unmet plan entries, `store.toml` and change to the app.

use std::path::Path;

use strata_planner::{KeyHasher, TaskKey};

use crate::execute::TaskOutput;
use crate::layers::{LaunchToml, Layer, SbomFile, SbomScope};

impl TaskOutput {
    /// The digest of what a task that needs this output can observe of it.
    pub fn digest(&self) -> TaskKey {
        let mut h = KeyHasher::new("output");
        match self {
            TaskOutput::Layer(built) => {
                h.field("layer");
                layer(&mut h, &built.layer);
                sbom(&mut h, &built.sbom);
            }
            TaskOutput::Buildpack(bp) => {
                h.field("buildpack").u64(bp.layers.layers.len() as u64);
                let mut layers: Vec<&Layer> = bp.layers.layers.iter().collect();
                layers.sort_by(|a, b| a.name.cmp(&b.name));
                for l in layers {
                    layer(&mut h, l);
                }
                sbom(&mut h, &bp.layers.sbom);
                launch(&mut h, &bp.layers.launch);
                h.field("unmet").list(&bp.layers.unmet);
                h.field("store");
                match &bp.layers.store {
                    Some(store) => {
                        h.bool(true);
                        table(&mut h, store);
                    }
                    None => {
                        h.bool(false);
                    }
                }
                h.field("app-changed").bool(bp.app_changed);
                h.field("change").value(&bp.change);
            }
            TaskOutput::Nothing => {
                h.field("nothing");
            }
        }
        h.finish()
    }
}

fn layer(h: &mut KeyHasher, layer: &Layer) {
    h.str(&layer.name)
        .bool(layer.types.launch)
        .bool(layer.types.build)
        .bool(layer.types.cache);
    h.value(&layer.blob.as_ref().map(|b| b.diff_id.clone()));
    table(h, &layer.metadata);
}

fn sbom(h: &mut KeyHasher, files: &[SbomFile]) {
    let mut files: Vec<&SbomFile> = files.iter().collect();
    files.sort_by(|a, b| (scope(&a.scope), &a.ext).cmp(&(scope(&b.scope), &b.ext)));
    h.field("sbom").u64(files.len() as u64);
    for file in files {
        h.str(&scope(&file.scope)).str(&file.ext);
        match content(&file.path) {
            Some(bytes) => h.bool(true).bytes(&bytes),
            None => h.bool(false),
        };
    }
}

fn scope(scope: &SbomScope) -> String {
    match scope {
        SbomScope::Launch => "launch".to_owned(),
        SbomScope::Build => "build".to_owned(),
        SbomScope::Layer(name) => format!("layer/{name}"),
    }
}

/// An SBOM is bounded in size where it is read for the image; past that it is not read here.
const MAX_SBOM: u64 = 64 * 1024 * 1024;

/// The content of a file a buildpack wrote (read without following its links); `None` when it
/// cannot be read, which no readable content equals.
fn content(path: &Path) -> Option<Vec<u8>> {
    crate::untrusted::read(path, MAX_SBOM).ok()
}

fn launch(h: &mut KeyHasher, launch: &LaunchToml) {
    h.field("labels").u64(launch.labels.len() as u64);
    for label in &launch.labels {
        h.str(&label.key).str(&label.value);
    }
    h.field("processes").u64(launch.processes.len() as u64);
    for p in &launch.processes {
        h.str(&p.r#type).list(&p.command).list(&p.args);
        h.bool(p.direct).bool(p.default).value(&p.working_dir);
        h.list(&p.exec_env);
    }
    h.field("slices").u64(launch.slices.len() as u64);
    for slice in &launch.slices {
        h.list(&slice.paths);
    }
}

/// A TOML table in key order, each value tagged with its type.
fn table(h: &mut KeyHasher, table: &toml::Table) {
    let mut entries: Vec<(&String, &toml::Value)> = table.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    h.u64(entries.len() as u64);
    for (key, value) in entries {
        h.str(key);
        toml_value(h, value);
    }
}

fn toml_value(h: &mut KeyHasher, value: &toml::Value) {
    match value {
        toml::Value::String(s) => {
            h.field("s").str(s);
        }
        toml::Value::Integer(i) => {
            h.field("i").bytes(&i.to_le_bytes());
        }
        toml::Value::Float(f) => {
            h.field("f").bytes(&f.to_bits().to_le_bytes());
        }
        toml::Value::Boolean(b) => {
            h.field("b").bool(*b);
        }
        toml::Value::Datetime(d) => {
            h.field("d").str(&d.to_string());
        }
        toml::Value::Array(items) => {
            h.field("a").u64(items.len() as u64);
            for item in items {
                toml_value(h, item);
            }
        }
        toml::Value::Table(t) => {
            h.field("t");
            table(h, t);
        }
    }
}
