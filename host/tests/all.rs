//! The host's one integration test binary (one link on 2 cores): the real `emwrite` binary run
//! from outside, its HTTP server, its outgoing requests and its split blocks. Each module is a
//! file beside this one.

mod outgoing;
mod serve;
mod split;
