//! The rebase rules, on images made in memory the way export makes them.

use oci_spec::image::{Arch, ImageConfiguration, Os};
use serde_json::json;

use super::fixtures::{self, BaseSpec, app_parts, run_image};
use super::*;

fn base(seed: &str) -> BaseSpec {
    BaseSpec::new(seed)
}

fn app(base: &RunImage, name: &str) -> AppImage {
    let (descriptor, manifest, config) = app_parts(base, name);
    AppImage::from_parts("oci:apps:app", descriptor, manifest, config).unwrap()
}

fn rebased_config(rebased: &Rebased) -> ImageConfiguration {
    serde_json::from_slice(&rebased.config_bytes).unwrap()
}

fn label(config: &ImageConfiguration, name: &str) -> Option<String> {
    config
        .config()
        .as_ref()
        .and_then(|c| c.labels().as_ref())
        .and_then(|l| l.get(name).cloned())
}

fn lifecycle(config: &ImageConfiguration) -> Value {
    serde_json::from_str(&label(config, LIFECYCLE_LABEL).unwrap()).unwrap()
}

fn env(config: &ImageConfiguration) -> Vec<String> {
    config.config().as_ref().unwrap().env().clone().unwrap()
}

const NAME: &str = "oci:base:run";

#[test]
fn rebase_onto_a_base_with_the_same_config_is_byte_identical_to_a_rebuild() {
    // The new base has other layers (and one more of them) but the old one's config.
    let old = run_image(&base("a").layers(1));
    let new = run_image(&base("a-patched").layers(2));
    let rebased = rebase(
        &app(&old, NAME),
        &NewBase::new(new.clone(), NAME),
        &RebaseOptions::default(),
    )
    .unwrap();
    let (rebuilt_descriptor, rebuilt_manifest, rebuilt_config) = app_parts(&new, NAME);
    assert_eq!(
        String::from_utf8(rebased.config_bytes.clone()).unwrap(),
        String::from_utf8(canonical_json(&rebuilt_config).unwrap()).unwrap()
    );
    assert_eq!(
        rebased.manifest_bytes,
        canonical_json(&rebuilt_manifest).unwrap()
    );
    assert_eq!(rebased.manifest, rebuilt_descriptor);
    assert!(rebased.overridden.is_empty() && rebased.kept_env.is_empty());
}

#[test]
fn layers_and_history_of_the_old_base_are_replaced_and_the_app_layers_reused() {
    let old = run_image(&base("a").layers(2));
    let new = run_image(&base("b").layers(3));
    let app = app(&old, NAME);
    let rebased = rebase(
        &app,
        &NewBase::new(new.clone(), NAME),
        &RebaseOptions::default(),
    )
    .unwrap();
    let manifest: ImageManifest = serde_json::from_slice(&rebased.manifest_bytes).unwrap();
    let config = rebased_config(&rebased);
    let (upper, upper_diff_ids) = app.upper_layers();
    assert_eq!(upper.len(), 2, "the fixture app has two layers");

    let expected: Vec<Descriptor> = new
        .layers
        .iter()
        .map(|l| l.descriptor.clone())
        .chain(upper.iter().cloned())
        .collect();
    assert_eq!(manifest.layers(), &expected);
    assert_eq!(manifest.config(), &rebased.config);
    let diff_ids: Vec<&String> = config.rootfs().diff_ids().iter().collect();
    let expected: Vec<&String> = new
        .layers
        .iter()
        .map(|l| &l.diff_id)
        .chain(upper_diff_ids)
        .collect();
    assert_eq!(diff_ids, expected);

    let created_by: Vec<String> = config
        .history()
        .iter()
        .flatten()
        .map(|h| h.created_by().clone().unwrap_or_default())
        .collect();
    assert_eq!(
        created_by,
        [
            "b layer 0",
            "b layer 1",
            "b layer 2",
            "b config",
            "Layer: 'runtime', Created by buildpack: examples/runtime@1.0.0",
            "Application Layer"
        ],
        "the old base's entries (with its trailing empty-layer one) give way to the new base's"
    );

    let run = &lifecycle(&config)["runImage"];
    assert_eq!(run["topLayer"], new.layers[2].diff_id);
    assert_eq!(run["reference"], new.manifest_digest);
    assert_eq!(run["image"], NAME);
    assert_eq!(
        lifecycle(&config)["buildpacks"],
        lifecycle(&app.config)["buildpacks"],
        "the rest of the label is kept"
    );
    assert_eq!(
        lifecycle(&config)["x-unknown"],
        "kept",
        "unknown keys survive"
    );
}

#[test]
fn platform_comes_from_the_new_base_and_created_from_the_options() {
    let old = run_image(&base("a"));
    let new = run_image(&base("b").variant("v8").arch("arm64"));
    let options = RebaseOptions {
        force: true,
        epoch: 1_700_000_000,
    };
    let rebased = rebase(&app(&old, NAME), &NewBase::new(new, NAME), &options).unwrap();
    let config = rebased_config(&rebased);
    assert_eq!(config.architecture(), &Arch::ARM64);
    assert_eq!(config.os(), &Os::Linux);
    assert_eq!(config.variant().as_deref(), Some("v8"));
    assert_eq!(config.created().as_deref(), Some("2023-11-14T22:13:20Z"));
    assert!(matches!(
        rebased.overridden.as_slice(),
        [Refusal::Target {
            field: "architecture",
            ..
        }]
    ));
}

#[test]
fn base_labels_are_replaced_and_app_labels_win_over_other_base_labels() {
    let old = run_image(&base("a").label("io.buildpacks.base.maintainer", "old team"));
    let new = run_image(
        &base("b")
            .label("io.buildpacks.base.id", "examples.busybox.v2")
            .label("org.example.bp", "from the base")
            .label("org.example.new", "added"),
    );
    let rebased = rebase(
        &app(&old, NAME),
        &NewBase::new(new, NAME),
        &RebaseOptions::default(),
    )
    .unwrap();
    let config = rebased_config(&rebased);
    assert_eq!(
        label(&config, "io.buildpacks.base.id").as_deref(),
        Some("examples.busybox.v2")
    );
    assert_eq!(label(&config, "io.buildpacks.base.maintainer"), None);
    assert_eq!(
        label(&config, "io.buildpacks.stack.id").as_deref(),
        Some("examples.stack")
    );
    assert_eq!(
        label(&config, "org.example.bp").as_deref(),
        Some("from a buildpack")
    );
    assert_eq!(label(&config, "org.example.new").as_deref(), Some("added"));
}

#[test]
fn a_new_base_that_is_not_rebasable_makes_the_image_not_rebasable() {
    let old = run_image(&base("a").label(REBASABLE_LABEL, "true"));
    let new = run_image(&base("b").label(REBASABLE_LABEL, "false"));
    let rebased = rebase(
        &app(&old, NAME),
        &NewBase::new(new.clone(), NAME),
        &RebaseOptions::default(),
    )
    .unwrap();
    let config = rebased_config(&rebased);
    assert_eq!(label(&config, REBASABLE_LABEL).as_deref(), Some("false"));

    let again = AppImage::from_parts(
        "oci:apps:app",
        rebased.manifest.clone(),
        serde_json::from_slice(&rebased.manifest_bytes).unwrap(),
        config,
    )
    .unwrap();
    let err = rebase(
        &again,
        &NewBase::new(run_image(&base("c")), NAME),
        &RebaseOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, RebaseErrorKind::Refused(r) if r == &[Refusal::NotRebasable]),
        "{err}"
    );
}

#[test]
fn env_gains_new_base_variables_and_keeps_the_apps_own_values() {
    let old = run_image(&base("a").env("TZ=UTC"));
    let new = run_image(
        &base("b")
            .env("TZ=Europe/Paris")
            .env("PATCH_LEVEL=2")
            .env("APP_MODE=debug"),
    );
    let rebased = rebase(
        &app(&old, NAME),
        &NewBase::new(new, NAME),
        &RebaseOptions::default(),
    )
    .unwrap();
    let env = env(&rebased_config(&rebased));
    assert!(env.contains(&"PATCH_LEVEL=2".to_owned()), "{env:?}");
    assert!(env.contains(&"TZ=UTC".to_owned()), "{env:?}");
    assert!(
        env.contains(&"APP_MODE=prod".to_owned()),
        "a buildpack's value stays: {env:?}"
    );
    assert!(
        env.iter().any(|e| e.starts_with("PATH=/layers/")),
        "{env:?}"
    );
    let mut sorted = env.clone();
    sorted.sort();
    assert_eq!(env, sorted, "Env stays in name order, as export writes it");
    assert_eq!(rebased.kept_env, ["APP_MODE", "TZ"]);
}

#[test]
fn a_prepended_path_over_another_base_path_is_reported() {
    let old = run_image(&base("a"));
    let new = run_image(&base("b").env("PATH=/usr/bin:/bin:/opt/new/bin"));
    let rebased = rebase(
        &app(&old, NAME),
        &NewBase::new(new, NAME),
        &RebaseOptions::default(),
    )
    .unwrap();
    assert_eq!(rebased.kept_env, ["PATH"]);
}

#[test]
fn not_rebasable_images_are_refused_unless_forced() {
    let old = run_image(&base("a").label(REBASABLE_LABEL, "false"));
    let new = NewBase::new(run_image(&base("b")), NAME);
    let app = app(&old, NAME);
    let err = rebase(&app, &new, &RebaseOptions::default()).unwrap_err();
    assert!(
        matches!(&err, RebaseErrorKind::Refused(r) if r == &[Refusal::NotRebasable]),
        "{err}"
    );
    assert!(err.to_string().contains("io.buildpacks.rebasable=false"));
    let forced = rebase(
        &app,
        &new,
        &RebaseOptions {
            force: true,
            ..RebaseOptions::default()
        },
    )
    .unwrap();
    assert_eq!(forced.overridden, [Refusal::NotRebasable]);
}

#[test]
fn target_checks_follow_the_cnb_rules() {
    let refusals = |old: &BaseSpec, new: &BaseSpec| {
        app(&run_image(old), NAME).refusals(&NewBase::new(run_image(new), NAME))
    };
    let a = || base("a");
    let b = || base("b");
    assert_eq!(refusals(&a(), &b()), []);
    let arch = refusals(&a(), &b().arch("arm64"));
    assert!(
        matches!(&arch[..], [Refusal::Target { field: "architecture", image, new_base }]
            if image == "amd64" && new_base == "arm64"),
        "{arch:?}"
    );
    assert_eq!(
        refusals(&a(), &b().variant("v8")),
        [],
        "variant set on one side only"
    );
    assert_eq!(refusals(&a().variant("v7"), &b().variant("v7")), []);
    assert_eq!(refusals(&a().variant("v7"), &b().variant("v8")).len(), 1);
    assert!(
        matches!(
            &refusals(&a(), &b().label(DISTRO_NAME_LABEL, "ubuntu"))[..],
            [Refusal::Target { field: DISTRO_NAME_LABEL, image, .. }] if image == "busybox"
        ),
        "the new base sets a distro the image does not have"
    );
    assert_eq!(
        refusals(&a(), &b().label(DISTRO_VERSION_LABEL, "1.36")).len(),
        1,
        "the image has no distro version"
    );
    assert_eq!(
        refusals(
            &a().label(DISTRO_VERSION_LABEL, "1.36"),
            &b().label(DISTRO_VERSION_LABEL, "1.36")
        ),
        []
    );
    assert_eq!(
        refusals(&a(), &b().label(DISTRO_NAME_LABEL, "")),
        [],
        "an empty label sets nothing"
    );
}

#[test]
fn images_without_base_labels_compare_the_stack_id() {
    let old = run_image(&base("a").no_base_labels());
    let same = run_image(&base("b").no_base_labels());
    let other = run_image(
        &base("c")
            .no_base_labels()
            .label(STACK_ID_LABEL, "other.stack"),
    );
    let app = app(&old, NAME);
    assert_eq!(app.refusals(&NewBase::new(same, NAME)), []);
    assert!(matches!(
        &app.refusals(&NewBase::new(other, NAME))[..],
        [Refusal::Target {
            field: STACK_ID_LABEL,
            ..
        }]
    ));
}

#[test]
fn another_run_image_name_is_refused_unless_forced_then_recorded() {
    let old = run_image(&base("a"));
    let new = NewBase::new(run_image(&base("b")), "oci:elsewhere:run");
    let app = app(&old, NAME);
    let err = rebase(&app, &new, &RebaseOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains(NAME) && err.to_string().contains("oci:elsewhere:run"),
        "{err}"
    );
    let forced = rebase(
        &app,
        &new,
        &RebaseOptions {
            force: true,
            ..RebaseOptions::default()
        },
    )
    .unwrap();
    let run = &lifecycle(&rebased_config(&forced))["runImage"];
    assert_eq!(run["image"], "oci:elsewhere:run");
    assert!(run.get("mirrors").is_none());
}

#[test]
fn a_mirror_name_is_accepted_and_the_recorded_names_kept() {
    let old = run_image(&base("a"));
    let (descriptor, manifest, mut config) = app_parts(&old, NAME);
    let mut labels = base_labels(&config);
    let mut meta: Value = serde_json::from_str(&labels[LIFECYCLE_LABEL]).unwrap();
    meta["runImage"]["mirrors"] = json!(["oci:mirror:run"]);
    labels.insert(LIFECYCLE_LABEL.to_owned(), meta.to_string());
    let mut runtime = config.config().clone().unwrap();
    runtime.set_labels(Some(label_map(labels)));
    config.set_config(Some(runtime));
    let app = AppImage::from_parts("oci:apps:app", descriptor, manifest, config).unwrap();
    let rebased = rebase(
        &app,
        &NewBase::new(run_image(&base("b")), "oci:mirror:run"),
        &RebaseOptions::default(),
    )
    .unwrap();
    let run = &lifecycle(&rebased_config(&rebased))["runImage"];
    assert_eq!(run["image"], NAME);
    assert_eq!(run["mirrors"], json!(["oci:mirror:run"]));
}

/// An app image whose lifecycle label is `value` (`None`: no label).
fn with_lifecycle(value: Option<&str>) -> Result<AppImage, RebaseErrorKind> {
    let old = run_image(&base("a"));
    let (descriptor, manifest, mut config) = app_parts(&old, NAME);
    let mut labels = base_labels(&config);
    match value {
        Some(value) => labels.insert(LIFECYCLE_LABEL.to_owned(), value.to_owned()),
        None => labels.remove(LIFECYCLE_LABEL),
    };
    let mut runtime = config.config().clone().unwrap();
    runtime.set_labels(Some(label_map(labels)));
    config.set_config(Some(runtime));
    AppImage::from_parts("oci:apps:app", descriptor, manifest, config)
}

#[test]
fn images_without_usable_metadata_are_refused_with_the_reason() {
    assert!(matches!(
        with_lifecycle(None),
        Err(RebaseErrorKind::NoMetadata)
    ));
    assert!(matches!(
        with_lifecycle(Some("{not json")),
        Err(RebaseErrorKind::InvalidMetadata { .. })
    ));
    assert!(matches!(
        with_lifecycle(Some("[]")),
        Err(RebaseErrorKind::InvalidMetadata { .. })
    ));
    assert!(matches!(
        with_lifecycle(Some(r#"{"runImage":{"reference":"x"}}"#)),
        Err(RebaseErrorKind::NoTopLayer)
    ));
    let unknown = format!(
        r#"{{"runImage":{{"topLayer":"{}"}}}}"#,
        fixtures::digest("nope")
    );
    let err = with_lifecycle(Some(&unknown)).unwrap_err();
    assert!(
        matches!(&err, RebaseErrorKind::UnknownTopLayer { top_layer } if *top_layer == fixtures::digest("nope")),
        "{err}"
    );
    assert!(err.to_string().contains(&fixtures::digest("nope")));
}

#[test]
fn manifest_and_config_must_agree_on_the_layer_count() {
    let old = run_image(&base("a"));
    let (descriptor, mut manifest, config) = app_parts(&old, NAME);
    let mut layers = manifest.layers().clone();
    layers.pop();
    manifest.set_layers(layers);
    let err = AppImage::from_parts("oci:apps:app", descriptor, manifest, config).unwrap_err();
    assert!(
        matches!(
            err,
            RebaseErrorKind::LayerCount {
                layers: 2,
                diff_ids: 3
            }
        ),
        "{err}"
    );
}

#[test]
fn a_history_that_does_not_match_the_layers_is_left_out() {
    let old = run_image(&base("a"));
    let (descriptor, manifest, mut config) = app_parts(&old, NAME);
    let mut history = config.history().clone().unwrap();
    history.pop();
    config.set_history(Some(history));
    let app = AppImage::from_parts("oci:apps:app", descriptor, manifest, config).unwrap();
    let rebased = rebase(
        &app,
        &NewBase::new(run_image(&base("b")), NAME),
        &RebaseOptions::default(),
    )
    .unwrap();
    assert_eq!(rebased_config(&rebased).history(), &None);
}

#[test]
fn an_image_on_the_new_base_is_up_to_date() {
    let a = run_image(&base("a"));
    let app = app(&a, NAME);
    assert!(app.is_on(&NewBase::new(a.clone(), NAME)));
    assert!(!app.is_on(&NewBase::new(run_image(&base("b")), NAME)));
    let same_layers_other_config = run_image(&base("a").env("X=1"));
    assert!(!app.is_on(&NewBase::new(same_layers_other_config, NAME)));
}

#[test]
fn a_registry_base_is_recorded_by_repository_and_digest_and_then_up_to_date() {
    const REGISTRY_NAME: &str = "registry.example.com/stacks/run:24";
    let old = run_image(&base("a"));
    let new = run_image(&base("b"));
    let base = NewBase::new(new.clone(), REGISTRY_NAME)
        .in_repository(Some("registry.example.com/stacks/run".to_owned()));
    let rebased = rebase(&app(&old, REGISTRY_NAME), &base, &RebaseOptions::default()).unwrap();
    let config = rebased_config(&rebased);
    let run = &lifecycle(&config)["runImage"];
    let reference = format!("registry.example.com/stacks/run@{}", new.manifest_digest);
    assert_eq!(run["reference"], reference);
    assert_eq!(run["image"], REGISTRY_NAME);
    let manifest: ImageManifest = serde_json::from_slice(&rebased.manifest_bytes).unwrap();
    let again =
        AppImage::from_parts("docker://x/app:1", rebased.manifest, manifest, config).unwrap();
    assert!(
        again.is_on(&base),
        "the rebased image is on the base it names"
    );
}

#[test]
fn errors_name_the_image() {
    let err = RebaseError {
        image: "oci:apps:app".to_owned(),
        kind: RebaseErrorKind::NoMetadata,
    };
    assert_eq!(
        err.to_string(),
        format!(
            "cannot rebase oci:apps:app: it has no `{LIFECYCLE_LABEL}` label: it was not built with buildpacks"
        )
    );
}
