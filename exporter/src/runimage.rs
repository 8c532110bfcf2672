//! runimage
