//! Reading a response: JSON lexing, finding the records in a page, flattening them into
//! cells, and GraphQL's envelope.

#[cfg(test)]
mod arbitrary;
pub mod graphql;
pub mod json;
pub mod records;
pub mod scan;
