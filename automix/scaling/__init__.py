"""μP at larger widths: carry a proxy trial's settings to wider models, and verify that they transfer."""

from automix.scaling._transfer import TransferResult, transfer
from automix.scaling._verify import VerifyResult, verify_transfer

__all__ = ["TransferResult", "VerifyResult", "transfer", "verify_transfer"]
