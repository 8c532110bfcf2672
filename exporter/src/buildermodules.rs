//! The buildpack side of a builder image's labels and `order.toml`: each buildpack's
//! `io.buildpacks.buildpack.layers` entry and `io.buildpacks.builder.metadata` info, with what
//! its `buildpack.toml` says as written (pack copies stacks and targets verbatim, where the
//! planner infers targets), and the builder's order with and without versions filled in.

use strata_planner::{Builder, Buildpack, Order as PlannerOrder};

use crate::buildercreate::BuilderCreateError;
use crate::builderlabels::{
    Distro, License, ModuleInfo, ModuleLayerInfo, ModuleRef, Order, OrderEntry, Stack, Target,
};

/// An order as the builder.toml wrote it (versions left out where it left them out).
pub(crate) fn label_order(order: &PlannerOrder) -> Order {
    order
        .iter()
        .map(|group| OrderEntry {
            group: group
                .group
                .iter()
                .map(|entry| ModuleRef {
                    id: entry.id.to_string(),
                    version: entry.version.clone().unwrap_or_default(),
                    optional: entry.optional,
                })
                .collect(),
        })
        .collect()
}

/// The builder's order with every version filled in from its buildpacks, for `order.toml`.
pub(crate) fn resolved_order(builder: &Builder) -> Result<Order, BuilderCreateError> {
    let mut order = label_order(&builder.order);
    for (group, entries) in order.iter_mut().zip(&builder.order) {
        for (entry, planned) in group.group.iter_mut().zip(&entries.group) {
            let bp = builder
                .registry
                .get(&planned.id, planned.version.as_deref())
                .map_err(|_| BuilderCreateError::UnknownBuildpack {
                    reference: planned.reference(),
                })?;
            bp.version().clone_into(&mut entry.version);
        }
    }
    Ok(order)
}

/// Every buildpack for the metadata label, by id and version (the registry keeps no file
/// order, and a fixed one keeps the label reproducible).
pub(crate) fn module_infos(builder: &Builder) -> Result<Vec<ModuleInfo>, BuilderCreateError> {
    let mut infos = Vec::new();
    for bp in builder.registry.iter() {
        infos.push(module_info(bp, &read_raw(bp)?));
    }
    infos.sort_by(|a, b| (&a.id, &a.version).cmp(&(&b.id, &b.version)));
    Ok(infos)
}

fn module_info(bp: &Buildpack, raw: &RawDescriptor) -> ModuleInfo {
    let info = &bp.descriptor.info;
    ModuleInfo {
        id: info.id.to_string(),
        name: info.name.clone().unwrap_or_default(),
        version: info.version.clone(),
        description: info.description.clone().unwrap_or_default(),
        homepage: info.homepage.clone().unwrap_or_default(),
        keywords: raw.buildpack.keywords.clone(),
        exec_env: info.exec_env.clone(),
        licenses: raw.buildpack.licenses.clone(),
        clear_env: info.clear_env,
    }
}

/// One buildpack's entry of `io.buildpacks.buildpack.layers`: what its `buildpack.toml` says,
/// as written (targets and stacks are not inferred, as in pack).
pub(crate) fn layer_info(
    bp: &Buildpack,
    diff_id: String,
) -> Result<ModuleLayerInfo, BuilderCreateError> {
    let raw = read_raw(bp)?;
    Ok(ModuleLayerInfo {
        api: bp.descriptor.api.clone(),
        stacks: raw.stacks,
        targets: raw
            .targets
            .into_iter()
            .map(|t| Target {
                os: t.os,
                arch: t.arch,
                variant: t.variant,
                distros: t.distros,
            })
            .collect(),
        order: label_order(&bp.descriptor.order),
        layer_diff_id: diff_id,
        homepage: bp.descriptor.info.homepage.clone().unwrap_or_default(),
        name: bp.descriptor.info.name.clone().unwrap_or_default(),
    })
}

/// The parts of `buildpack.toml` the planner does not keep as written.
#[derive(serde::Deserialize, Default)]
struct RawDescriptor {
    #[serde(default)]
    buildpack: RawInfo,
    #[serde(default)]
    stacks: Vec<Stack>,
    #[serde(default)]
    targets: Vec<RawTarget>,
}

#[derive(serde::Deserialize, Default)]
struct RawInfo {
    #[serde(default)]
    keywords: Vec<String>,
    #[serde(default)]
    licenses: Vec<License>,
}

#[derive(serde::Deserialize)]
struct RawTarget {
    #[serde(default)]
    os: String,
    #[serde(default)]
    arch: String,
    #[serde(default, alias = "arch-variant")]
    variant: String,
    #[serde(default)]
    distros: Vec<Distro>,
}

fn read_raw(bp: &Buildpack) -> Result<RawDescriptor, BuilderCreateError> {
    let path = bp.dir.join("buildpack.toml");
    let text = std::fs::read_to_string(&path).map_err(|source| BuilderCreateError::Descriptor {
        path: path.clone(),
        source,
    })?;
    // The planner parsed this file already; a shape it accepted and this one does not is
    // read as empty rather than refused twice.
    Ok(toml::from_str(&text).unwrap_or_default())
}

/// Checks, as pack does when it creates a builder, that every component buildpack that names
/// `[[targets]]` names one the build image satisfies: its os, its architecture (unless either
/// leaves it out) and, when both say, its distribution.
pub(crate) fn check_targets(
    builder: &Builder,
    os: &str,
    arch: &str,
    distro: (&str, &str),
) -> Result<(), BuilderCreateError> {
    for bp in builder.registry.iter().filter(|bp| !bp.is_composite()) {
        let targets = read_raw(bp)?.targets;
        if targets.is_empty() {
            continue;
        }
        let fits = targets.iter().any(|t| {
            t.os == os
                && (t.arch.is_empty() || arch.is_empty() || t.arch == arch)
                && (t.distros.is_empty()
                    || distro.0.is_empty()
                    || distro.1.is_empty()
                    || t.distros
                        .iter()
                        .any(|d| d.name == distro.0 && d.version == distro.1))
        });
        if !fits {
            let describe = |os: &str, arch: &str, distros: Vec<String>| {
                let arch = if arch.is_empty() { "*" } else { arch };
                std::iter::once(format!("{os}/{arch}"))
                    .chain(distros)
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let listed: Vec<String> = targets
                .iter()
                .map(|t| {
                    let distros = t.distros.iter();
                    describe(
                        &t.os,
                        &t.arch,
                        distros
                            .map(|d| format!("{} {}", d.name, d.version))
                            .collect(),
                    )
                })
                .collect();
            let distro = if distro.0.is_empty() {
                Vec::new()
            } else {
                vec![format!("{} {}", distro.0, distro.1)]
            };
            let image = describe(os, arch, distro);
            return Err(BuilderCreateError::UnsupportedTarget {
                buildpack: bp.reference(),
                targets: listed.join(", "),
                image,
            });
        }
    }
    Ok(())
}
