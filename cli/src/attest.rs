//! `strata build --sign-key`: after the images are written (and pushed), each gets a signature
//! of its manifest digest and a signed SLSA provenance attestation, both attached to it as
//! OCI 1.1 artifacts where it was written (the output layout, or the registry it was pushed
//! to). The provenance says what went into the image (see `strata_exporter::provenance`);
//! it is made here, from what the build already knows, and nothing of it enters the image.
//! An image that was in the output already keeps the signature and provenance this key
//! attached to it (see `strata_exporter::attested`): a build that changes nothing changes no
//! artifact either; another key adds its own.

use std::time::SystemTime;

use strata_exporter::attested::{provenance_by, signature_by};
use strata_exporter::dsse::{self, DSSE_MEDIA_TYPE, IN_TOTO_PAYLOAD_TYPE};
use strata_exporter::gitcommit::git_commit;
use strata_exporter::layout::Layout;
use strata_exporter::provenance::{BuildFacts, BuildpackUsed, Dependency, sha256_set, statement};
use strata_exporter::reference::ImageRef;
use strata_exporter::referrers::{
    Artifact, KEY_ANNOTATION, PROVENANCE_ARTIFACT_TYPE, SIGNATURE_ARTIFACT_TYPE,
};
use strata_exporter::signing::SigningKey;

use crate::attach::Attached;
use crate::build::BuildConfig;
use crate::config::BuildImageSource;
use crate::error::CliError;
use crate::prepare::Prepared;
use crate::report::BuildReport;

/// The provenance of service `index`'s image `digest`, known as `image`.
fn facts(
    config: &BuildConfig,
    prepared: &Prepared,
    index: usize,
    image: &str,
    digest: &str,
    started: SystemTime,
) -> BuildFacts {
    let service = &prepared.services[index];
    let service_config = &config.input.services[service.config];
    let group = &prepared.plan.services[index].group.group;
    let buildpacks = group
        .iter()
        .map(|member| {
            let bp = &member.buildpack;
            BuildpackUsed {
                id: bp.id().to_string(),
                version: bp.version().to_owned(),
                blake3: service
                    .digests
                    .get(&bp.reference())
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            }
        })
        .collect();
    let build_image = match &service_config.build_image {
        BuildImageSource::Host => None,
        BuildImageSource::Image(reference) => Some(image_dependency(reference)),
    };
    BuildFacts {
        image: image.to_owned(),
        manifest_digest: digest.to_owned(),
        service: service_config.name.clone(),
        source: format!("file://{}", service_config.app_dir.display()),
        source_blake3: service.app.digest_of(service.app.files.iter()).to_string(),
        git_commit: git_commit(&service_config.app_dir),
        builder: service_config
            .builder
            .as_ref()
            .map(|(name, digest)| Dependency {
                name: name.clone(),
                digest: sha256_set(digest),
            }),
        buildpacks,
        run_image: service.run_image.as_ref().map(|run| Dependency {
            name: service.run_image_name.clone(),
            digest: sha256_set(&run.manifest_digest),
        }),
        build_image,
        env_names: service_config.env.iter().map(|(k, _)| k.clone()).collect(),
        exec_env: config.input.exec_env.clone(),
        source_date_epoch: config.input.epoch,
        compression: config.compression_name().to_owned(),
        launcher: config.launcher().is_some(),
        started,
        finished: SystemTime::now(),
    }
}

/// A build image by name and manifest digest (none if the layout cannot tell).
fn image_dependency(reference: &ImageRef) -> Dependency {
    let digest = Layout::open(reference.dir())
        .and_then(|layout| layout.resolve(reference.tag()))
        .map(|(descriptor, _)| sha256_set(descriptor.digest().as_ref()))
        .unwrap_or_default();
    Dependency {
        name: reference.to_string(),
        digest,
    }
}

/// The provenance artifact: the statement in a DSSE envelope signed by `key`.
fn provenance_artifact(facts: &BuildFacts, key: &SigningKey) -> Result<Artifact, CliError> {
    let bytes = statement(facts)
        .map_err(|e| CliError::Attach(format!("cannot write the provenance statement: {e}")))?;
    let envelope = dsse::sign(IN_TOTO_PAYLOAD_TYPE, &bytes, key)?;
    let layer = serde_json::to_vec(&envelope)
        .map_err(|e| CliError::Attach(format!("cannot write the DSSE envelope: {e}")))?;
    Ok(Artifact {
        artifact_type: PROVENANCE_ARTIFACT_TYPE.to_owned(),
        layer_media_type: DSSE_MEDIA_TYPE.to_owned(),
        layer,
        layer_annotations: [(
            "in-toto.io/predicate-type".to_owned(),
            strata_exporter::provenance::PREDICATE_TYPE.to_owned(),
        )]
        .into(),
        annotations: [(KEY_ANNOTATION.to_owned(), key.public().id())].into(),
    })
}

/// With `--sign-key`, signs every image the build has and attaches its provenance, recording
/// both artifacts' digests in the report; without, does nothing. A docker-archive output
/// cannot carry them: it is refused before the build (see [`BuildConfig::from_args`]).
///
/// # Errors
/// An error writing to the layout or registry.
pub(crate) fn attest(
    config: &BuildConfig,
    prepared: &Prepared,
    report: &mut BuildReport,
    progress: &crate::progress::Progress,
    started: std::time::Instant,
) -> Result<(), CliError> {
    let Some(key) = config.sign_key() else {
        return Ok(());
    };
    progress.line("===> SIGNING");
    let started = SystemTime::now()
        .checked_sub(started.elapsed())
        .unwrap_or_else(SystemTime::now);
    let images = &config.input.images;
    for service in &mut report.services {
        let Some(image) = &mut service.image else {
            continue;
        };
        let Some(index) = prepared
            .plan
            .services
            .iter()
            .position(|s| s.name == service.name)
        else {
            continue;
        };
        // Where the image is now: pushed under its first reference, else in the layout.
        let name = image
            .pushed
            .as_ref()
            .and_then(|p| p.references.first().cloned())
            .unwrap_or_else(|| image.image.clone());
        let target = Attached::open(&name, images)?;
        if target.subject().digest != image.digest {
            return Err(CliError::Attach(format!(
                "{name} names {} now, not the image just built ({}): not signed",
                target.subject().digest,
                image.digest
            )));
        }
        // An image already in the output keeps what this key attached to it: its provenance
        // differs only in its times, and the image in nothing.
        let listed = target.list(PROVENANCE_ARTIFACT_TYPE)?;
        image.provenance = Some(
            if let Some(kept) = provenance_by(&image.digest, &listed, key.public()) {
                kept.digest.clone()
            } else {
                let facts = facts(config, prepared, index, &name, &image.digest, started);
                target.attach(&provenance_artifact(&facts, key)?)?
            },
        );
        let listed = target.list(SIGNATURE_ARTIFACT_TYPE)?;
        image.signature = Some(match signature_by(&image.digest, &listed, key.public()) {
            Some(kept) => kept.digest.clone(),
            None => crate::sign::sign_image(&target, key)?,
        });
    }
    if let (Some(single), Some(image)) = (
        &mut report.single,
        report.services.first().and_then(|s| s.image.as_ref()),
    ) {
        single.provenance.clone_from(&image.provenance);
        single.signature.clone_from(&image.signature);
    }
    Ok(())
}
