//! The Responses API (`/v1/responses`): its request, its input items, and the
//! response object. Stateless: every request carries the whole conversation.

pub mod input;
pub mod object;
pub mod request;
