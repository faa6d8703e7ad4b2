"""Transfer to larger models (μP in width, CompleteP in depth): carry a proxy trial's settings, verify they hold."""

from automix.scaling._transfer import TransferResult, transfer
from automix.scaling._verify import VerifyResult, verify_transfer

__all__ = ["TransferResult", "VerifyResult", "transfer", "verify_transfer"]
