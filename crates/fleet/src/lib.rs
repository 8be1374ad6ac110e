//! A fleet of edgeway boxes on PostgreSQL: each box's query log shipped to a central database
//! ([`ship`]), never on the request path; the center's configuration followed by every box
//! ([`follow`]); and the center's schema, retention, config versions and view of the boxes
//! ([`center`]).

pub mod center;
pub mod follow;
pub mod ship;

pub use ship::ShipConfig;
/// A connection to the center.
pub use tokio_postgres::Client;

/// What can go wrong between a box and the center.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The center refused or failed a statement, or the connection broke.
    #[error("fleet center: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// The center did not answer in time.
    #[error("the fleet center did not answer within {0:?}")]
    Timeout(std::time::Duration),
    /// The center's schema is not one this edgeway can use.
    #[error("fleet schema: {0}")]
    Schema(String),
    /// The TLS settings could not be used (a CA file that cannot be read or parsed).
    #[error("TLS to the fleet center: {0}")]
    Tls(String),
    /// The local query log could not be read or updated.
    #[error("local query log: {0}")]
    Local(String),
}
