//! # mishkah-server
pub mod datadir;
pub mod storage;
