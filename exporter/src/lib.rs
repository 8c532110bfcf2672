//! strata's exporter: reproducible layer tars, OCI image layouts, run images, and image
//! assembly with the CNB labels.

pub mod archive;
pub mod base;
pub mod baseconfig;
pub mod image;
pub mod inspect;
pub mod layout;
pub mod metadata;
pub mod reference;
pub mod runimage;
