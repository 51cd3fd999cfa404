"""Controller ingest: DBC-compiled, vectorised decoding of received frames into measurements."""

from controller.ingest.decoder import (
    BatchDecoder,
    DecodedMessage,
    IngestReport,
    IngestState,
    RejectReason,
    compile_decoder,
)
from controller.ingest.mapping import MappingConfig, load_mapping, parse_mapping

__all__ = [
    "BatchDecoder",
    "DecodedMessage",
    "IngestReport",
    "IngestState",
    "MappingConfig",
    "RejectReason",
    "compile_decoder",
    "load_mapping",
    "parse_mapping",
]
