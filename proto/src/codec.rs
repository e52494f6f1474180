//! The gRPC codec of every Herald service: prost encoding, with small
//! per-call buffers.
//!
//! tonic's default gives each call an 8 KiB encode buffer and an 8 KiB
//! decode buffer, allocated when the call starts and kept while it lives.
//! An agent session is one call that lives for days and carries messages of
//! a few hundred bytes, and a server holds one per connected computer, so
//! those two buffers would be a large share of the server's memory per
//! agent. Here a call starts with 512 bytes each way; a larger message grows
//! its buffer as needed, as before.

use std::marker::PhantomData;

use tonic::codec::{BufferSettings, Codec};
use tonic_prost::ProstCodec;

/// Initial size of a call's encode and decode buffers.
pub const CALL_BUFFER: usize = 512;
/// Encoded bytes a stream writes before it yields to the runtime (tonic's
/// default).
const YIELD_THRESHOLD: usize = 32 * 1024;

fn settings() -> BufferSettings {
    BufferSettings::new(CALL_BUFFER, YIELD_THRESHOLD)
}

/// prost encoding with [`CALL_BUFFER`]-sized buffers.
#[derive(Debug, Clone, Copy)]
pub struct LeanCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for LeanCodec<T, U> {
    fn default() -> Self {
        LeanCodec(PhantomData)
    }
}

impl<T, U> Codec for LeanCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = <ProstCodec<T, U> as Codec>::Encoder;
    type Decoder = <ProstCodec<T, U> as Codec>::Decoder;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(settings())
    }
}
