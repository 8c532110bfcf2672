//! strata's exporter: reproducible layer tars, OCI image layouts, run images, and image
//! assembly with the CNB labels.

pub mod archive;
pub mod base;
pub mod layout;
pub mod reference;
pub mod runimage;
