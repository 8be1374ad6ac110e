//! One module per endpoint. Handlers are thin: validate, submit, shape.

pub mod chat;
pub mod completions;
pub mod health;
pub mod models;
pub mod tokenize;
