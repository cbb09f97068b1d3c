// Each test binary uses part of the support code.
#![allow(dead_code)]

pub mod article_benchmark;
