"""Named domain errors. Each says which rule was broken and by how much."""

from __future__ import annotations


class DomainError(Exception):
    """A command refused by a rule of the ledger. Nothing was recorded."""

    rule = "domain-rule"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PartnershipNotEstablishedError(DomainError):
    rule = "partnership-established"


class PartnershipAlreadyEstablishedError(DomainError):
    rule = "partnership-once"


class CurrencyMismatchError(DomainError):
    rule = "one-currency"


class EffectiveDateError(DomainError):
    """An effective date outside what the ledger can hold: bad input (exit 2), not a
    refusal of what the ledger holds."""

    rule = "effective-date"


class DateBeforeStartError(EffectiveDateError):
    rule = "not-before-start"


class DateAfterRecordingError(EffectiveDateError):
    rule = "not-after-recording"


class DateBeforeReversedFactError(EffectiveDateError):
    rule = "not-before-reversed-fact"


class DateMismatchError(EffectiveDateError):
    """A fact with a date of its own recorded as effective on another date."""

    rule = "own-date"


class InsufficientUnitsError(DomainError):
    rule = "units-held"


class YearNotPledgedError(DomainError):
    rule = "year-pledged"


class PledgeUnchangedError(DomainError):
    rule = "pledge-adjusts"


class PledgeMismatchError(DomainError):
    """A recorded pledge that is not what the terms and the portfolio history give."""

    rule = "pledge-computed"


class PledgeBelowCommitmentsError(DomainError):
    rule = "pledge-covers-commitments"


class ReceiptExceedsPledgeError(DomainError):
    rule = "receipt-within-pledge"


class InitiativeAlreadyRegisteredError(DomainError):
    rule = "initiative-unique"


class InitiativeNotFoundError(DomainError):
    rule = "initiative-exists"


class InitiativeClosedError(DomainError):
    rule = "initiative-open"


class AllocationAlreadyExistsError(DomainError):
    rule = "allocation-unique"


class AllocationNotFoundError(DomainError):
    rule = "allocation-exists"


class AllocationExceedsUnallocatedError(DomainError):
    rule = "allocation-within-pledge"


class ReleaseExceedsAllocationError(DomainError):
    rule = "release-within-allocation"


class DisbursementExceedsAvailableError(DomainError):
    rule = "disbursement-within-allocation"


class MilestoneAlreadyReachedError(DomainError):
    rule = "milestone-once"


class NotReversibleError(DomainError):
    rule = "reversible"


class ReversalTargetError(DomainError):
    """The fact a reversal names is not recorded, or not as the reversal says."""

    rule = "reversal-target"


class AlreadyReversedError(DomainError):
    rule = "reverse-once"


class TotalBelowZeroError(DomainError):
    """A reversal that would take a total (receipts, disbursements) below zero."""

    rule = "totals-not-negative"


class SealError(DomainError):
    rule = "seal-advances"


class CommandIdReusedError(DomainError):
    """The same command id was sent before with different content."""

    rule = "command-id-unique"


class ConcurrencyError(DomainError):
    """Other writers kept changing the ledger; the command was not recorded."""

    rule = "concurrent-change"
