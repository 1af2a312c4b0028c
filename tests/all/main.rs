//! The project's one integration test binary (one link on 2 cores).

mod outgoing;
mod serve;
mod split;
