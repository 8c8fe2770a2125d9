"""Segment descriptions and algorithm identification (PS3.3 C.8.20.2, C.8.20.3)."""
from __future__ import annotations

import copy as copy_module
from collections.abc import Sequence

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue as DicomMultiValue
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.coding import Code

from monai_dicomseg.color import CIELabColor
from monai_dicomseg.enums import SegmentAlgorithmTypeValues, to_enum
from monai_dicomseg.errors import DecodeError, InputError, InputTypeError
from monai_dicomseg.sr.coding import CodedConcept, as_coded_concept

__all__ = ["SegmentDescription", "AlgorithmIdentificationSequence"]

_MAX_SEGMENT_NUMBER = 65535  # Segment Number is US (PS3.3 C.8.20.2)


class AlgorithmIdentificationSequence(DicomSequence):
    """Algorithm Identification Sequence with one item (PS3.3 Table 10-19).

    Parameters
    ----------
    name
        Algorithm Name (0066,0036).
    family
        Algorithm Family Code (0066,002F), e.g.
        ``codes.cid7162.ArtificialIntelligence``.
    version
        Algorithm Version (0066,0031).
    source
        Optional Algorithm Source (0066,0032), e.g. an organisation.
    parameters
        Optional name → value pairs stored as Algorithm Parameters (0066,0033).
    """

    def __init__(
        self,
        name: str,
        family: Code | CodedConcept,
        version: str,
        source: str | None = None,
        parameters: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        for argument, value in (("name", name), ("version", version)):
            if not isinstance(value, str) or not value:
                raise InputError(f"algorithm {argument} must be a non-empty string; got {value!r}")
        item = Dataset()
        item.AlgorithmName = name
        item.AlgorithmVersion = version
        item.AlgorithmFamilyCodeSequence = [as_coded_concept(family, "family")]
        if source is not None:
            item.AlgorithmSource = source
        if parameters:
            item.AlgorithmParameters = ",".join(f"{k}={v}" for k, v in parameters.items())
        self.append(item)

    @classmethod
    def from_sequence(cls, sequence: Sequence[Dataset], copy: bool = True) -> "AlgorithmIdentificationSequence":
        """Wrap an existing sequence read from a file (one item with AlgorithmName)."""
        if len(sequence) != 1 or "AlgorithmName" not in sequence[0]:
            raise DecodeError(
                "AlgorithmIdentificationSequence must have exactly one item with AlgorithmName; "
                f"got {len(sequence)} item(s)"
            )
        result = cls.__new__(cls)
        DicomSequence.__init__(result, [copy_module.deepcopy(sequence[0]) if copy else sequence[0]])
        return result

    @property
    def name(self) -> str:
        """str: Algorithm Name."""
        return str(self[0].AlgorithmName)

    @property
    def version(self) -> str:
        """str: Algorithm Version."""
        return str(self[0].get("AlgorithmVersion", ""))

    @property
    def family(self) -> CodedConcept:
        """CodedConcept: Algorithm Family."""
        return CodedConcept.from_dataset(self[0].AlgorithmFamilyCodeSequence[0])

    @property
    def source(self) -> str | None:
        """str | None: Algorithm Source."""
        return str(self[0].AlgorithmSource) if "AlgorithmSource" in self[0] else None

    @property
    def parameters(self) -> dict[str, str] | None:
        """dict[str, str] | None: Algorithm Parameters as name → value."""
        if "AlgorithmParameters" not in self[0]:
            return None
        pairs = (part.split("=", 1) for part in str(self[0].AlgorithmParameters).split(","))
        return {pair[0]: (pair[1] if len(pair) > 1 else "") for pair in pairs}


def _as_color(display_color: object) -> CIELabColor:
    if isinstance(display_color, CIELabColor):
        return display_color
    if hasattr(display_color, "value") and len(display_color.value) == 3:
        return CIELabColor.from_dicom_value(display_color.value)  # e.g. highdicom's CIELabColor
    if isinstance(display_color, (tuple, list)) and len(display_color) == 3:
        return CIELabColor.from_rgb(display_color)
    raise InputTypeError(
        "display_color must be a CIELabColor or an (R, G, B) tuple of 0-255 values; "
        f"got {display_color!r}"
    )


class SegmentDescription(Dataset):
    """One item of the Segment Sequence (PS3.3 C.8.20.2, Table C.8-111).

    Parameters
    ----------
    segment_number
        Segment Number, 1-based (1 … 65535).
    segment_label
        Segment Label, any human-readable string.
    segmented_property_category
        Category (CID 7150), e.g. ``codes.SCT.Organ``.
    segmented_property_type
        Type (CID 7151), e.g. ``codes.SCT.Liver``.
    algorithm_type
        ``"AUTOMATIC"``, ``"SEMIAUTOMATIC"`` or ``"MANUAL"`` (or the enum).
    algorithm_identification
        Required unless ``algorithm_type`` is MANUAL.
    tracking_uid, tracking_id
        Tracking identifiers; both or neither.
    anatomic_regions
        Codes of the anatomic region(s) containing the segment.
    primary_anatomic_structures
        Codes of the anatomic structure(s) the segment represents.
    display_color
        A :class:`~monai_dicomseg.color.CIELabColor` or an 8-bit (R, G, B)
        tuple; stored as Recommended Display CIELab Value (0062,000D).
    """

    def __init__(
        self,
        segment_number: int,
        segment_label: str,
        segmented_property_category: Code | CodedConcept,
        segmented_property_type: Code | CodedConcept,
        algorithm_type: SegmentAlgorithmTypeValues | str,
        algorithm_identification: AlgorithmIdentificationSequence | None = None,
        tracking_uid: str | None = None,
        tracking_id: str | None = None,
        anatomic_regions: Sequence[Code | CodedConcept] | None = None,
        primary_anatomic_structures: Sequence[Code | CodedConcept] | None = None,
        display_color: "CIELabColor | tuple[int, int, int] | None" = None,
    ) -> None:
        super().__init__()
        if isinstance(segment_number, bool) or not isinstance(segment_number, int):
            raise InputTypeError(
                f"segment_number must be an int; got {type(segment_number).__name__}"
            )
        if not 1 <= segment_number <= _MAX_SEGMENT_NUMBER:
            raise InputError(
                f"segment_number must be in [1, {_MAX_SEGMENT_NUMBER}]; got {segment_number}"
            )
        if not isinstance(segment_label, str):
            raise InputTypeError(f"segment_label must be a str; got {type(segment_label).__name__}")
        self.SegmentNumber = segment_number
        self.SegmentLabel = segment_label
        self.SegmentedPropertyCategoryCodeSequence = [
            as_coded_concept(segmented_property_category, "segmented_property_category")
        ]
        self.SegmentedPropertyTypeCodeSequence = [
            as_coded_concept(segmented_property_type, "segmented_property_type")
        ]
        algorithm = to_enum(SegmentAlgorithmTypeValues, algorithm_type, "algorithm_type")
        self.SegmentAlgorithmType = algorithm.value
        if algorithm_identification is None:
            if algorithm is not SegmentAlgorithmTypeValues.MANUAL:
                raise InputTypeError(
                    "algorithm_identification is required unless algorithm_type is MANUAL; "
                    f"algorithm_type is {algorithm.value}"
                )
        else:
            if not isinstance(algorithm_identification, DicomSequence) or len(algorithm_identification) != 1:
                raise InputTypeError(
                    "algorithm_identification must be an AlgorithmIdentificationSequence"
                )
            self.SegmentAlgorithmName = algorithm_identification[0].AlgorithmName
            self.SegmentationAlgorithmIdentificationSequence = algorithm_identification
        if (tracking_id is None) != (tracking_uid is None):
            raise InputTypeError("tracking_id and tracking_uid must both be given or both omitted")
        if tracking_id is not None:
            self.TrackingID = tracking_id
            self.TrackingUID = tracking_uid
        if anatomic_regions is not None:
            self.AnatomicRegionSequence = [
                as_coded_concept(code, "anatomic_regions") for code in anatomic_regions
            ]
        if primary_anatomic_structures is not None:
            self.PrimaryAnatomicStructureSequence = [
                as_coded_concept(code, "primary_anatomic_structures")
                for code in primary_anatomic_structures
            ]
        if display_color is not None:
            self.RecommendedDisplayCIELabValue = list(_as_color(display_color).value)

    @classmethod
    def from_dataset(cls, dataset: Dataset, copy: bool = True) -> "SegmentDescription":
        """Wrap a Segment Sequence item read from a file.

        Raises
        ------
        DecodeError
            If a mandatory attribute (SegmentNumber, SegmentLabel, the two
            property code sequences, SegmentAlgorithmType) is missing.
        """
        if not isinstance(dataset, Dataset):
            raise InputTypeError(f"dataset must be a pydicom Dataset; got {type(dataset).__name__}")
        for keyword in ("SegmentNumber", "SegmentedPropertyCategoryCodeSequence",
                        "SegmentedPropertyTypeCodeSequence", "SegmentAlgorithmType"):
            if keyword not in dataset:
                raise DecodeError(f"SegmentSequence item lacks {keyword}")
        number = dataset.get("SegmentNumber")
        if isinstance(number, (list, tuple, DicomMultiValue)) or number is None or number == "":
            raise DecodeError(
                f"SegmentNumber must be one integer (US, VM 1, PS3.3 C.8.20.2); got {number!r}"
            )
        description = copy_module.deepcopy(dataset) if copy else dataset
        description.__class__ = cls
        return description  # type: ignore[return-value]  # its class was set to cls on the line above

    @property
    def segment_number(self) -> int:
        """int: Segment Number."""
        try:
            return int(self.SegmentNumber)
        except (TypeError, ValueError, OverflowError, AttributeError):
            raise DecodeError(
                f"SegmentNumber must be an integer (US, PS3.3 C.8.20.2); got {self.get('SegmentNumber')!r}"
            ) from None

    @property
    def segment_label(self) -> str:
        """str: Segment Label ('' when absent: it is type 1 but some producers omit it)."""
        return str(self.get("SegmentLabel", ""))

    @property
    def segmented_property_category(self) -> CodedConcept:
        """CodedConcept: Segmented Property Category."""
        return _single_code(self, "SegmentedPropertyCategoryCodeSequence")

    @property
    def segmented_property_type(self) -> CodedConcept:
        """CodedConcept: Segmented Property Type."""
        return _single_code(self, "SegmentedPropertyTypeCodeSequence")

    @property
    def algorithm_type(self) -> SegmentAlgorithmTypeValues:
        """SegmentAlgorithmTypeValues: Segment Algorithm Type."""
        value = self.get("SegmentAlgorithmType")
        try:
            return SegmentAlgorithmTypeValues(str(value))
        except ValueError:
            raise DecodeError(
                f"SegmentAlgorithmType must be one of {[v.value for v in SegmentAlgorithmTypeValues]}; "
                f"got {value!r}"
            ) from None

    @property
    def algorithm_identification(self) -> AlgorithmIdentificationSequence | None:
        """AlgorithmIdentificationSequence | None: the algorithm, when recorded."""
        if "SegmentationAlgorithmIdentificationSequence" not in self:
            return None
        return AlgorithmIdentificationSequence.from_sequence(
            self.SegmentationAlgorithmIdentificationSequence, copy=False
        )

    @property
    def tracking_uid(self) -> str | None:
        """str | None: Tracking UID."""
        return str(self.TrackingUID) if "TrackingUID" in self else None

    @property
    def tracking_id(self) -> str | None:
        """str | None: Tracking ID."""
        return str(self.TrackingID) if "TrackingID" in self else None

    @property
    def anatomic_regions(self) -> list[CodedConcept]:
        """list[CodedConcept]: Anatomic Region Sequence items (empty when absent)."""
        return [_code(item, "AnatomicRegionSequence") for item in self.get("AnatomicRegionSequence", [])]

    @property
    def primary_anatomic_structures(self) -> list[CodedConcept]:
        """list[CodedConcept]: Primary Anatomic Structure Sequence items."""
        return [
            _code(item, "PrimaryAnatomicStructureSequence")
            for item in self.get("PrimaryAnatomicStructureSequence", [])
        ]

    @property
    def display_color(self) -> CIELabColor | None:
        """CIELabColor | None: Recommended Display CIELab Value."""
        if "RecommendedDisplayCIELabValue" not in self:
            return None
        return CIELabColor.from_dicom_value(self.RecommendedDisplayCIELabValue)


def _code(item: Dataset, keyword: str) -> CodedConcept:
    """A code item read from a file; a malformed one is a :class:`DecodeError` naming ``keyword``."""
    try:
        return CodedConcept.from_dataset(item, copy=False)
    except (InputError, InputTypeError) as exc:
        raise DecodeError(f"{keyword} item is not a valid code item (PS3.3 8.8): {exc}") from None
    except Exception as exc:  # values pydicom converts on access (odd lengths, bad text)
        raise DecodeError(f"{keyword} item cannot be decoded: {exc}") from exc


def _single_code(description: Dataset, keyword: str) -> CodedConcept:
    """The one item of a Type 1 code sequence that holds exactly one item (PS3.3 C.8.20.2)."""
    try:
        items = description.get(keyword) or []
    except Exception as exc:  # a sequence pydicom cannot parse (converted on first access)
        raise DecodeError(f"{keyword} cannot be decoded: {exc}") from exc
    if len(items) != 1:
        raise DecodeError(
            f"SegmentSequence item {description.get('SegmentNumber', '?')}: {keyword} must hold exactly "
            f"1 item (PS3.3 C.8.20.2); found {len(items)}"
        )
    return _code(items[0], keyword)
