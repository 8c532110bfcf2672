//! strata's exporter: reproducible layer tars, OCI image layouts, run images, image
//! assembly with the CNB labels, and rebase onto a new run image.

pub mod archive;
pub mod base;
pub mod baseconfig;
mod blobfile;
pub mod builderconfig;
pub mod buildercreate;
pub mod builderimage;
pub mod builderlabels;
mod buildermodules;
pub mod builduser;
pub mod dockerarchive;
pub mod fleet;
pub mod image;
pub mod imagefile;
pub mod inspect;
pub mod launch;
pub mod launcher;
pub mod launcherstore;
pub mod layout;
pub mod layoutcheck;
pub mod lifecycletar;
pub mod metadata;
pub mod pgzip;
pub mod processes;
pub mod rebase;
pub mod reference;
pub mod relocate;
mod restorestate;
pub mod rootfs;
pub mod runimage;
pub mod runproof;
pub mod sbomdoc;
pub mod taskcache;
pub mod unpack;
pub mod zstdlayer;
