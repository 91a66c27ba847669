//! Image representations from the encoder output. CapPa's encoder has no class token and no
//! MAP head; its representation (used by the reference's few-shot linear probe) is the global
//! average over image tokens (GAP).

use crate::backend::Backend;
use crate::error::Result;
use crate::model::Model;

impl<B: Backend> Model<B> {
    /// GAP features `[B, enc_width]` of `encoded [B, patches, enc_width]`.
    pub fn gap(&self, encoded: &B::Tensor) -> Result<B::Tensor> {
        self.check_encoded(encoded, None)?;
        self.backend().mean_rows(encoded)
    }
}
