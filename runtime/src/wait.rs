//! Blocking and non-blocking reads, one decoding loop for both.
//!
//! A web page cannot block: WebGPU hands mapped memory back only once control returns to the
//! browser's event loop. So the loops that read results back while decoding (greedy, sampling,
//! beam search, parallel decoding, zero-shot scoring) are written once, as `async fn`s that
//! read through a [`Wait`]:
//!
//! * [`Wait::Block`] reads with the backend's blocking methods ([`Backend::download`], ...).
//!   Nothing in the loop then ever waits, so [`now`] runs the future to its end with a single
//!   poll: this is the synchronous API ([`crate::Model::caption_tokens`], ...), native
//!   behaviour unchanged.
//! * [`Wait::Async`] awaits the backend's non-blocking reads ([`Backend::download_async`], ...):
//!   this is the `_async` API ([`crate::Model::caption_tokens_async`], ...), which a browser
//!   drives from its event loop (and a native program with any executor).

use alloc::vec::Vec;
use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tensor::HostTensor;

/// How a decoding loop reads from the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// The backend's blocking reads.
    Block,
    /// The backend's non-blocking reads.
    Async,
}

impl Wait {
    /// [`Backend::download`] or [`Backend::download_async`].
    pub async fn download<B: Backend>(self, be: &B, t: &B::Tensor) -> Result<HostTensor> {
        match self {
            Wait::Block => be.download(t),
            Wait::Async => be.download_async(t).await,
        }
    }

    /// [`Backend::download_ids`] or [`Backend::download_ids_async`].
    pub async fn download_ids<B: Backend>(self, be: &B, ids: &B::Ids) -> Result<Vec<u32>> {
        match self {
            Wait::Block => be.download_ids(ids),
            Wait::Async => be.download_ids_async(ids).await,
        }
    }

    /// [`Backend::download_with_ids`] or [`Backend::download_with_ids_async`].
    pub async fn download_with_ids<B: Backend>(
        self,
        be: &B,
        t: &B::Tensor,
        ids: &B::Ids,
    ) -> Result<(HostTensor, Vec<u32>)> {
        match self {
            Wait::Block => be.download_with_ids(t, ids),
            Wait::Async => be.download_with_ids_async(t, ids).await,
        }
    }
}

/// The result of a future that never waits (a loop reading with [`Wait::Block`]), polled once.
/// A future that is not ready after that poll is a bug in the caller, reported as an error.
pub(crate) fn now<T>(f: impl Future<Output = Result<T>>) -> Result<T> {
    let f = pin!(f);
    match f.poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(r) => r,
        Poll::Pending => Err(Error::Backend(
            "internal error: a blocking read did not complete".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::CpuBackend;

    #[test]
    fn blocking_and_async_reads_agree_on_the_cpu() {
        let be = CpuBackend::new();
        let t = be
            .upload(&HostTensor::new(&[2], alloc::vec![1.5, -2.0]).unwrap())
            .unwrap();
        let ids = be.upload_ids(&[3], &[7, 8, 9]).unwrap();
        for wait in [Wait::Block, Wait::Async] {
            assert_eq!(now(wait.download(&be, &t)).unwrap().data(), [1.5, -2.0]);
            assert_eq!(now(wait.download_ids(&be, &ids)).unwrap(), [7, 8, 9]);
            let (v, i) = now(wait.download_with_ids(&be, &t, &ids)).unwrap();
            assert_eq!(
                (v.data(), i.as_slice()),
                ([1.5, -2.0].as_slice(), [7, 8, 9].as_slice())
            );
        }
    }

    #[test]
    fn a_future_that_waits_is_an_error_not_a_hang() {
        let pending = core::future::pending::<Result<()>>();
        assert!(matches!(now(pending), Err(Error::Backend(_))));
        assert_eq!(now(async { Ok(3) }).unwrap(), 3);
    }
}
