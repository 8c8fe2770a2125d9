"""``Volume`` (voxel array + affine) and ``VolumeGeometry`` (affine + shape only).

The guide's ``hd.Volume`` / ``hd.VolumeGeometry``. Axes are ``(F, R, C)``
(frame, row, column: the order in which frames are encoded in a DICOM
multi-frame image, PS3.3 C.7.6.16) followed by optional channel axes; the
affine maps a voxel index to an LPS patient (or slide) position. Geometry
operations live in :class:`~monai_dicomseg.geometry.volume_base.VolumeBase`.

MONAI conversion (:meth:`Volume.to_monai` / :meth:`Volume.from_monai`) is the
numpy side here (axis order, metadata, channel axis); ``torch`` and ``monai``
are imported inside those two methods only, so this module never loads them.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np

from monai_dicomseg.enums import CoordinateSystemNames, to_enum
from monai_dicomseg.errors import InputError, InputTypeError, MissingDependencyError
from monai_dicomseg.geometry import affine as affine_ops
from monai_dicomseg.geometry.channels import ChannelDescriptor, normalize_channels
from monai_dicomseg.geometry.padding import PadModes, pad_spatial
from monai_dicomseg.geometry.volume_base import ArrayOperation, VolumeBase
from monai_dicomseg.meta_keys import MetaKey

if TYPE_CHECKING:  # pragma: no cover
    from typing_extensions import Self

__all__ = [
    "Volume", "VolumeGeometry", "ChannelDescriptor", "PadModes", "MonaiAxisOrder", "monai_metadata",
    "MONAI_FRAME_OF_REFERENCE_KEY",
]

_ChannelValues = Sequence[int | str | float | Enum]
#: ``channels=``: descriptor, keyword or tag -> values (one entry per channel axis). A union of
#: Mappings, not one dict type: dict keys are invariant, so a ``dict[ChannelDescriptor, list]``
#: (what :func:`normalize_channels` returns) would not match ``dict[ChannelDescriptor | int | str, ...]``.
ChannelsArgument = (Mapping[ChannelDescriptor, _ChannelValues] | Mapping[str, _ChannelValues]
                    | Mapping[int, _ChannelValues] | Mapping[ChannelDescriptor | int | str, _ChannelValues] | None)


def _check_patient_orientation_argument(patient_orientation: Any, coordinate_system: Any) -> None:
    if patient_orientation is not None and to_enum(
        CoordinateSystemNames, coordinate_system, "coordinate_system"
    ) != CoordinateSystemNames.PATIENT:
        raise InputError("patient_orientation may only be given for the PATIENT coordinate system")


def _check_spatial_shape(spatial_shape: Sequence[int]) -> tuple[int, int, int]:
    try:
        shape = tuple(int(n) for n in spatial_shape)
    except (TypeError, ValueError):
        raise InputError(f"spatial_shape must be 3 positive ints; got {spatial_shape!r}") from None
    if len(shape) != 3 or min(shape) < 1:
        raise InputError(f"spatial_shape must be 3 positive ints; got {spatial_shape!r}")
    return shape


def _check_array(array: Any, argument: str = "array") -> np.ndarray:
    if not isinstance(array, np.ndarray):
        raise InputTypeError(f"{argument} must be a numpy.ndarray; got {type(array).__name__}")
    if array.ndim < 3:
        raise InputError(f"{argument} must have at least 3 (spatial) dimensions; got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_) or np.issubdtype(
        array.dtype, np.complexfloating
    ):
        raise InputTypeError(
            f"{argument} must have an integer, floating point or boolean dtype; got {array.dtype}"
        )
    return array


class MonaiAxisOrder(str, Enum):
    """Spatial axis order of the tensor of :meth:`Volume.to_monai` (and expected by :meth:`Volume.from_monai`).

    Either order is exact: the affine always maps the tensor's own indices,
    so MONAI's spatial transforms (``Orientation``, ``Spacing``) and
    ``SaveDicomSeg`` treat both alike; they differ in which voxel sits at
    which index.
    """

    VOLUME = "volume"
    """The volume's own ``(F, R, C)`` axes, untouched (highdicom pull request #454)."""
    MONAI = "monai"
    """MONAI's order for a DICOM series: ``(C, R, S)``, slice axis along ``cross(row, column cosines)``,
    what ``LoadDicomSeries``, ``ITKReader`` and (usually) ``PydicomReader`` return:
    ``monai[c, r, s] == volume[F - 1 - s, r, c]`` (see :mod:`monai_dicomseg.io.source_series`)."""


MONAI_FRAME_OF_REFERENCE_KEY = MetaKey.FRAME_OF_REFERENCE_UID
"""``MetaTensor.meta`` key of the FrameOfReferenceUID (the DICOM keyword; also set by ``LoadDicomSeries``)."""


def _in_monai_axis_order(volume: "Volume", axis_order: "MonaiAxisOrder | str") -> "Volume":
    """``volume`` re-indexed into ``axis_order`` (a flip and a transpose; voxel positions unchanged)."""
    if to_enum(MonaiAxisOrder, axis_order, "axis_order") is MonaiAxisOrder.VOLUME:
        return volume
    return volume.flip_spatial(0).permute_spatial_axes((2, 1, 0))


def _from_monai_axis_order(volume: "Volume", axis_order: "MonaiAxisOrder | str") -> "Volume":
    """Inverse of :func:`_in_monai_axis_order`: back to the volume's ``(F, R, C)`` axes."""
    if to_enum(MonaiAxisOrder, axis_order, "axis_order") is MonaiAxisOrder.VOLUME:
        return volume
    restored = volume.permute_spatial_axes((2, 1, 0)).flip_spatial(0)
    return restored.with_array(np.ascontiguousarray(restored.array))


def _monai_space(space: Any, convert_to_ras: "bool | None") -> str:
    """``"RAS"`` or ``"LPS"`` from ``space`` or its alias ``convert_to_ras`` (not both)."""
    if isinstance(space, bool):
        raise InputError(f"space must be 'RAS' or 'LPS'; got {space!r} (did you mean convert_to_ras={space}?)")
    if convert_to_ras is None:
        return affine_ops.check_space(space)
    if affine_ops.check_space(space) != affine_ops.RAS:
        raise InputError(f"give space or convert_to_ras, not both; got space={space!r}, "
                         f"convert_to_ras={convert_to_ras!r}")
    return affine_ops.RAS if convert_to_ras else affine_ops.LPS


def monai_metadata(volume: "Volume", space: str = "RAS") -> dict[str, Any]:
    """``MetaTensor.meta`` of a volume (keys: MONAI's ``MetaKeys`` values, plus the frame of reference).

    Parameters
    ----------
    volume
        A PATIENT volume, already in the axis order of the tensor.
    space
        ``"RAS"`` or ``"LPS"``.

    Returns
    -------
    dict
        ``affine`` and ``original_affine`` (``(4, 4) float64`` in ``space``),
        ``space``, ``spacing`` (per array axis, mm), ``spatial_shape``
        (tuple), ``original_channel_dim`` (-1 with one channel axis, else
        NaN: no channel), and ``FrameOfReferenceUID`` when known.
    """
    affine = volume.get_affine(affine_ops.check_space(space))
    meta: dict[str, Any] = {
        MetaKey.AFFINE: affine.copy(),
        MetaKey.ORIGINAL_AFFINE: affine.copy(),
        MetaKey.SPACE: affine_ops.check_space(space),
        MetaKey.SPACING: volume.spacing,
        MetaKey.SPATIAL_SHAPE: volume.spatial_shape,
        MetaKey.ORIGINAL_CHANNEL_DIM: -1 if volume.number_of_channel_dimensions else float("nan"),
    }
    if volume.frame_of_reference_uid is not None:
        meta[MONAI_FRAME_OF_REFERENCE_KEY] = volume.frame_of_reference_uid
    return meta


def _channels_last(array: np.ndarray, channel_dim: int, channels: Any) -> np.ndarray:
    """A MetaTensor's array with its one channel axis moved last (dropped if 1 long and undescribed).

    3D arrays are returned as they are (``channel_dim`` ignored, as in
    highdicom's pull request).
    """
    if array.ndim < 3 or array.ndim > 4:
        raise InputError(
            f"from_monai supports 3 spatial axes and at most one channel axis; got shape {array.shape}"
        )
    if array.ndim == 3:
        return array
    if isinstance(channel_dim, bool) or not isinstance(channel_dim, (int, np.integer)) or not -4 <= channel_dim < 4:
        raise InputError(f"channel_dim must be an int in [-4, 3] for a 4D tensor; got {channel_dim!r}")
    array = np.moveaxis(array, int(channel_dim), -1)
    if channels is None:
        if array.shape[-1] != 1:
            raise InputError(
                f"the tensor has {array.shape[-1]} channels (axis {channel_dim} of shape "
                f"{tuple(np.moveaxis(array, -1, int(channel_dim)).shape)}); describe them with channels="
                "{descriptor: values} or pass the right channel_dim"
            )
        array = array[..., 0]
    return array


class VolumeGeometry(VolumeBase):
    """Geometry of a regular 3D grid without voxel data.

    Parameters
    ----------
    affine
        ``(4, 4)`` index ``(frame, row, column)`` to frame-of-reference affine.
    spatial_shape
        ``(F, R, C)``.
    coordinate_system
        ``"PATIENT"`` (LPS) or ``"SLIDE"``.
    frame_of_reference_uid
        FrameOfReferenceUID, if known.
    from_reference_convention
        Convention of ``affine`` if not LPS (e.g. ``"RAS"`` for NIfTI).
    """

    def __init__(
        self,
        affine: np.ndarray,
        spatial_shape: Sequence[int],
        coordinate_system: "CoordinateSystemNames | str",
        frame_of_reference_uid: "str | None" = None,
        from_reference_convention: "str | Sequence[str] | None" = None,
    ) -> None:
        super().__init__(affine, coordinate_system, frame_of_reference_uid, from_reference_convention)
        self._spatial_shape = _check_spatial_shape(spatial_shape)

    @classmethod
    def from_attributes(
        cls,
        *,
        image_position: Sequence[float] | np.ndarray,
        image_orientation: Sequence[float] | np.ndarray,
        rows: int,
        columns: int,
        pixel_spacing: Sequence[float] | np.ndarray,
        spacing_between_slices: float,
        number_of_frames: int,
        coordinate_system: "CoordinateSystemNames | str",
        frame_of_reference_uid: "str | None" = None,
    ) -> "Self":
        """Geometry of frames described by Image Plane attributes (PS3.3 C.7.6.2)."""
        affine = affine_ops.affine_from_image_plane(
            image_position, image_orientation, pixel_spacing, spacing_between_slices
        )
        return cls(affine, (number_of_frames, rows, columns), coordinate_system, frame_of_reference_uid)

    @classmethod
    def from_components(
        cls,
        spatial_shape: Sequence[int],
        *,
        spacing: "Sequence[float] | float",
        coordinate_system: "CoordinateSystemNames | str",
        position: "Sequence[float] | None" = None,
        center_position: "Sequence[float] | None" = None,
        direction: "Sequence[float] | np.ndarray | None" = None,
        patient_orientation: "str | Sequence[str] | None" = None,
        frame_of_reference_uid: "str | None" = None,
        from_reference_convention: "str | Sequence[str] | None" = None,
    ) -> "Self":
        """Geometry from spacing, direction (or patient orientation) and position (or centre)."""
        _check_patient_orientation_argument(patient_orientation, coordinate_system)
        affine = affine_ops.affine_from_components(
            spacing=spacing, position=position, center_position=center_position,
            direction=direction, patient_orientation=patient_orientation,
            spatial_shape=spatial_shape,
        )
        return cls(affine, spatial_shape, coordinate_system, frame_of_reference_uid,
                   from_reference_convention)

    @property
    def spatial_shape(self) -> tuple[int, int, int]:
        """``(F, R, C)``."""
        return self._spatial_shape

    @property
    def shape(self) -> tuple[int, ...]:
        """Same as :attr:`spatial_shape` (a geometry has no channels)."""
        return self._spatial_shape

    @property
    def ndim(self) -> int:
        """Always 3."""
        return 3

    def _derive(self, affine: np.ndarray, spatial_shape: Sequence[int],
                array_operation: "ArrayOperation | None") -> "Self":
        return self.__class__(affine, spatial_shape, self._coordinate_system, self._frame_of_reference_uid)

    def copy(self) -> "Self":
        """Independent copy."""
        return self._derive(self._affine.copy(), self._spatial_shape, None)

    def with_array(self, array: np.ndarray, channels: ChannelsArgument = None) -> "Volume":
        """A :class:`Volume` with this geometry; ``array.shape[:3]`` must equal the spatial shape."""
        array = _check_array(array)
        if tuple(array.shape[:3]) != self._spatial_shape:
            raise InputError(
                f"array spatial shape {tuple(array.shape[:3])} does not match the geometry's "
                f"{self._spatial_shape}"
            )
        return Volume(array, self._affine.copy(), self._coordinate_system,
                      self._frame_of_reference_uid, channels)

    def __repr__(self) -> str:
        return (f"VolumeGeometry(spatial_shape={self._spatial_shape}, "
                f"coordinate_system={self._coordinate_system.value}, affine={self._affine.tolist()})")


class Volume(VolumeBase):
    """Voxel array on a regular 3D grid, with its affine and channel axes.

    Parameters
    ----------
    array
        ``(F, R, C, *channel_shape)`` integer, float or bool array.
    affine
        ``(4, 4)`` index-to-frame-of-reference affine (LPS for PATIENT).
    coordinate_system
        ``"PATIENT"`` or ``"SLIDE"``.
    frame_of_reference_uid
        FrameOfReferenceUID, if known.
    channels
        One entry per channel axis, in axis order: descriptor (e.g.
        ``"SegmentNumber"``) -> values along that axis (e.g. ``[1, 2, 3]``).
    from_reference_convention
        Convention of ``affine`` if not LPS (``"RAS"`` for NIfTI affines).
    """

    def __init__(
        self,
        array: np.ndarray,
        affine: np.ndarray,
        coordinate_system: "CoordinateSystemNames | str",
        frame_of_reference_uid: "str | None" = None,
        channels: ChannelsArgument = None,
        from_reference_convention: "str | Sequence[str] | None" = None,
    ) -> None:
        super().__init__(affine, coordinate_system, frame_of_reference_uid, from_reference_convention)
        self._array = _check_array(array)
        self._channels = normalize_channels(channels, tuple(array.shape[3:]))

    @classmethod
    def from_attributes(
        cls,
        *,
        array: np.ndarray,
        image_position: Sequence[float] | np.ndarray,
        image_orientation: Sequence[float] | np.ndarray,
        pixel_spacing: Sequence[float] | np.ndarray,
        spacing_between_slices: float,
        coordinate_system: "CoordinateSystemNames | str",
        frame_of_reference_uid: "str | None" = None,
        channels: ChannelsArgument = None,
    ) -> "Self":
        """Volume whose frames are described by Image Plane attributes (PS3.3 C.7.6.2)."""
        affine = affine_ops.affine_from_image_plane(
            image_position, image_orientation, pixel_spacing, spacing_between_slices
        )
        return cls(array, affine, coordinate_system, frame_of_reference_uid, channels)

    @classmethod
    def from_components(
        cls,
        array: np.ndarray,
        *,
        spacing: "Sequence[float] | float",
        coordinate_system: "CoordinateSystemNames | str",
        position: "Sequence[float] | None" = None,
        center_position: "Sequence[float] | None" = None,
        direction: "Sequence[float] | np.ndarray | None" = None,
        patient_orientation: "str | Sequence[str] | None" = None,
        frame_of_reference_uid: "str | None" = None,
        channels: ChannelsArgument = None,
        from_reference_convention: "str | Sequence[str] | None" = None,
    ) -> "Self":
        """Volume from spacing, direction (or patient orientation) and position (or centre)."""
        array = _check_array(array)
        _check_patient_orientation_argument(patient_orientation, coordinate_system)
        affine = affine_ops.affine_from_components(
            spacing=spacing, position=position, center_position=center_position,
            direction=direction, patient_orientation=patient_orientation,
            spatial_shape=array.shape[:3],
        )
        return cls(array, affine, coordinate_system, frame_of_reference_uid, channels,
                   from_reference_convention)

    # ------------------------------------------------------------ array and channels
    @property
    def array(self) -> np.ndarray:
        """The voxel array ``(F, R, C, *channel_shape)``."""
        return self._array

    @array.setter
    def array(self, value: np.ndarray) -> None:
        value = _check_array(value, "array")
        if value.shape != self._array.shape:
            raise InputError(
                f"new array shape {value.shape} must equal the volume's shape {self._array.shape}"
            )
        self._array = value

    @property
    def dtype(self) -> np.dtype:
        """dtype of the array."""
        return self._array.dtype

    @property
    def shape(self) -> tuple[int, ...]:
        """Full array shape, channels included."""
        return tuple(self._array.shape)

    @property
    def spatial_shape(self) -> tuple[int, int, int]:
        """``(F, R, C)``."""
        return tuple(self._array.shape[:3])

    @property
    def ndim(self) -> int:
        """Number of array dimensions (3 + channel axes)."""
        return self._array.ndim

    @property
    def number_of_channel_dimensions(self) -> int:
        """Number of channel axes."""
        return self._array.ndim - 3

    @property
    def channel_shape(self) -> tuple[int, ...]:
        """``array.shape[3:]``."""
        return tuple(self._array.shape[3:])

    @property
    def channel_descriptors(self) -> tuple[ChannelDescriptor, ...]:
        """Descriptor of each channel axis, in axis order."""
        return tuple(self._channels)

    def _find_channel(self, identifier: "ChannelDescriptor | int | str") -> ChannelDescriptor:
        for descriptor in self._channels:
            if identifier == descriptor or (
                isinstance(identifier, int) and not isinstance(identifier, bool)
                and descriptor.tag == identifier
            ):
                return descriptor
        raise InputError(
            f"volume has no channel {identifier!r}; channels: "
            f"{[d.keyword for d in self._channels] or 'none'}"
        )

    def get_channel_values(self, channel_identifier: "ChannelDescriptor | int | str") -> list[Any]:
        """Copy of the values along a channel axis (e.g. segment numbers)."""
        return list(self._channels[self._find_channel(channel_identifier)])

    def get_channel(self, *, keepdims: bool = False, **values: Any) -> "Self":
        """Select one value along channel axes by keyword, e.g. ``get_channel(SegmentNumber=2)``."""
        index: list[Any] = [slice(None)] * self._array.ndim
        channels = dict(self._channels)
        for keyword, value in values.items():
            descriptor = self._find_channel(keyword)
            if descriptor.is_enumerated:
                value = descriptor.value_type(value)
            try:
                position = self._channels[descriptor].index(value)
            except ValueError:
                raise InputError(
                    f"value {value!r} not found in channel {descriptor}: "
                    f"{self._channels[descriptor]}"
                ) from None
            axis = 3 + list(self._channels).index(descriptor)
            if keepdims:
                index[axis] = slice(position, position + 1)
                channels[descriptor] = [value]
            else:
                index[axis] = position
                del channels[descriptor]
        return self.with_array(self._array[tuple(index)], channels=channels)

    # ------------------------------------------------------------ derived volumes
    def _derive(self, affine: np.ndarray, spatial_shape: Sequence[int],
                array_operation: "ArrayOperation | None") -> "Self":
        array = self._array if array_operation is None else array_operation(self._array)
        return self.__class__(array, affine, self._coordinate_system, self._frame_of_reference_uid,
                              self._channels)

    def _padder(self, widths: list, mode: "PadModes | str", constant_value: float,
                per_channel: bool) -> ArrayOperation:
        return lambda array: pad_spatial(array, widths, mode=mode, constant_value=constant_value,
                                         per_channel=per_channel)

    def get_geometry(self) -> VolumeGeometry:
        """The geometry of this volume, without the array."""
        return VolumeGeometry(self._affine.copy(), self.spatial_shape, self._coordinate_system,
                              self._frame_of_reference_uid)

    def copy(self) -> "Self":
        """Deep copy (array included)."""
        return self.__class__(self._array.copy(), self._affine.copy(), self._coordinate_system,
                              self._frame_of_reference_uid, self._channels)

    def with_array(self, array: np.ndarray, channels: ChannelsArgument = None) -> "Self":
        """Same geometry, new array; channels default to this volume's when the array has them."""
        array = _check_array(array)
        if tuple(array.shape[:3]) != self.spatial_shape:
            raise InputError(
                f"array spatial shape {tuple(array.shape[:3])} does not match the volume's "
                f"{self.spatial_shape}"
            )
        if channels is None and array.ndim > 3:
            if array.shape != self.shape:
                raise InputError(
                    f"array shape {array.shape} must equal the volume's {self.shape} "
                    "unless channels are given"
                )
            channels = self._channels
        return self.__class__(array, self._affine.copy(), self._coordinate_system,
                              self._frame_of_reference_uid, channels)

    def astype(self, dtype: "type | str | np.dtype") -> "Self":
        """Same volume with the array cast to ``dtype``."""
        return self.with_array(self._array.astype(dtype))

    def squeeze_channel(self) -> "Self":
        """Drop channel axes of length 1."""
        keep = {d: v for d, v in self._channels.items() if len(v) != 1}
        axes = tuple(3 + i for i, v in enumerate(self._channels.values()) if len(v) == 1)
        return self.with_array(np.squeeze(self._array, axis=axes), channels=keep)

    # ------------------------------------------------------------ nibabel
    def to_nibabel(self) -> Any:
        """``nibabel.Nifti1Image`` of this volume: same array, affine rewritten LPS -> RAS.

        Boolean arrays are stored as ``uint8``. Volumes with channel axes are
        not supported.
        """
        nibabel = _import_nibabel()
        self._require_patient("to_nibabel")
        if self.number_of_channel_dimensions:
            raise InputError(
                f"to_nibabel supports volumes without channel axes; this one has shape {self.shape}"
            )
        array = self._array.astype(np.uint8) if self.dtype == np.bool_ else self._array
        return nibabel.Nifti1Image(array, affine_ops.lps_to_ras_affine(self._affine))

    @classmethod
    def from_nibabel(
        cls,
        nibabel_image: Any,
        coordinate_system: "CoordinateSystemNames | str" = CoordinateSystemNames.PATIENT,
        frame_of_reference_uid: "str | None" = None,
    ) -> "Self":
        """Volume from a 3D nibabel image; its RAS affine is rewritten as LPS."""
        _import_nibabel()
        array = np.asarray(nibabel_image.dataobj)
        if array.ndim != 3:
            raise InputError(f"from_nibabel supports 3D images; got shape {array.shape}")
        system = to_enum(CoordinateSystemNames, coordinate_system, "coordinate_system")
        if system != CoordinateSystemNames.PATIENT:
            raise InputError("from_nibabel needs the PATIENT coordinate system (NIfTI is RAS)")
        return cls(array, affine_ops.ras_to_lps_affine(np.asarray(nibabel_image.affine)),
                   system, frame_of_reference_uid)

    # ------------------------------------------------------------ MONAI
    def to_monai(
        self,
        space: str = "RAS",
        ensure_channel_first: bool = False,
        *,
        convert_to_ras: "bool | None" = None,
        axis_order: "MonaiAxisOrder | str" = MonaiAxisOrder.VOLUME,
    ) -> Any:
        """``monai.data.MetaTensor`` of this volume (needs ``monai`` and ``torch``).

        The signature and behaviour follow highdicom's pull request #454
        ("Add to_monai and from_monai methods", head 1c2ecb0 of 2026-08-06,
        open): the array keeps the volume's axes unless ``axis_order`` says
        otherwise, the affine is converted to ``space``, one channel axis at
        most. Verified against that code; not yet in a highdicom release.

        Parameters
        ----------
        space
            ``"RAS"`` (default, MONAI's convention) or ``"LPS"`` (DICOM's):
            the convention of the affine, recorded in ``meta["space"]``.
        ensure_channel_first
            Apply MONAI's ``EnsureChannelFirst``: ``(1, *spatial)`` without
            a channel axis, the channel axis moved first otherwise.
        convert_to_ras
            Alias of ``space`` discussed in the PR's review
            (True: ``"RAS"``, False: ``"LPS"``); give one of the two.
        axis_order
            ``"volume"`` (default, as highdicom: ``(F, R, C)``) or
            ``"monai"``: ``(C, R, S)`` exactly as
            :class:`~monai_dicomseg.transforms.load_series.LoadDicomSeries`
            (our extension, see :class:`MonaiAxisOrder`).

        Returns
        -------
        monai.data.MetaTensor
            A copy of the array (its dtype) with the metadata of
            :func:`monai_metadata`.

        Raises
        ------
        GeometryError
            For a SLIDE volume (MONAI's space is RAS or LPS; highdicom would
            label slide coordinates as such).
        InputError
            More than one channel axis; a bad ``space``/``axis_order``.
        MissingDependencyError
            Without ``monai``/``torch``.
        """
        try:
            import torch
            from monai.data import MetaTensor
            from monai.transforms import EnsureChannelFirst
        except ImportError:
            raise MissingDependencyError("Volume.to_monai needs the 'monai' package (and 'torch')") from None
        self._require_patient("to_monai")
        if self.number_of_channel_dimensions > 1:
            raise InputError(
                f"to_monai supports at most one channel axis; this volume has {self.number_of_channel_dimensions} "
                f"(shape {self.shape})"
            )
        meta_space = _monai_space(space, convert_to_ras)
        volume = _in_monai_axis_order(self, axis_order)
        array = np.array(volume.array, order="C", copy=True)  # torch needs positive strides; never shares memory
        tensor = MetaTensor(torch.from_numpy(array), meta=monai_metadata(volume, meta_space))
        return EnsureChannelFirst()(tensor) if ensure_channel_first else tensor

    @classmethod
    def from_monai(
        cls,
        metatensor: Any,
        coordinate_system: "CoordinateSystemNames | str" = CoordinateSystemNames.PATIENT,
        frame_of_reference_uid: "str | None" = None,
        channels: ChannelsArgument = None,
        channel_dim: int = 0,
        *,
        axis_order: "MonaiAxisOrder | str" = MonaiAxisOrder.VOLUME,
    ) -> "Self":
        """Volume from a ``monai.data.MetaTensor`` (needs ``monai``).

        Signature and behaviour of highdicom's pull request #454 (see
        :meth:`to_monai`): the affine is read in the convention of
        ``meta["space"]`` (RAS when absent) and stored as LPS; a 4D tensor's
        channel axis ``channel_dim`` becomes the last axis (dropped when it
        is 1 long and ``channels`` is None).

        Parameters
        ----------
        metatensor
            One image (not a batch): ``(*spatial)`` or with one channel axis.
        coordinate_system
            ``"PATIENT"`` (the only one MONAI's RAS/LPS spaces describe).
        frame_of_reference_uid
            FrameOfReferenceUID; default ``meta["FrameOfReferenceUID"]``
            when present (our extension: what ``to_monai`` and
            ``LoadDicomSeries`` record), else None.
        channels
            Descriptor -> values of the channel axis, as in :class:`Volume`.
        channel_dim
            Axis of the channel in a 4D tensor (default 0, channel first).
        axis_order
            ``"volume"`` (default): the tensor's spatial axes become the
            volume's; ``"monai"``: they are ``(C, R, S)`` (``LoadDicomSeries``,
            ``to_monai(axis_order="monai")``) and are put back into
            ``(F, R, C)``, the volume highdicom makes of the series.

        Raises
        ------
        InputTypeError
            If ``metatensor`` is not a MetaTensor.
        InputError
            A batch, not 3D/4D, several channels without ``channels``, a
            bad ``channel_dim``, ``space`` or ``coordinate_system``.
        MissingDependencyError
            Without ``monai``.
        """
        try:
            from monai.data import MetaTensor
        except ImportError:
            raise MissingDependencyError("Volume.from_monai needs the 'monai' package (and 'torch')") from None
        if not isinstance(metatensor, MetaTensor):
            raise InputTypeError(f"metatensor must be a monai.data.MetaTensor; got {type(metatensor).__name__}")
        if metatensor.is_batch:
            raise InputError("metatensor is a batch; pass one image (monai.data.decollate_batch)")
        system = to_enum(CoordinateSystemNames, coordinate_system, "coordinate_system")
        if system != CoordinateSystemNames.PATIENT:
            raise InputError(f"from_monai needs the PATIENT coordinate system (MONAI's space is RAS or LPS); "
                             f"got {system.value}")
        space = affine_ops.check_space(metatensor.meta.get(MetaKey.SPACE, affine_ops.RAS),
                                       f'metatensor.meta["{MetaKey.SPACE}"]')
        if frame_of_reference_uid is None:
            frame_of_reference_uid = str(metatensor.meta.get(MONAI_FRAME_OF_REFERENCE_KEY) or "") or None
        array = _channels_last(np.array(metatensor.detach().cpu().numpy(), copy=True), channel_dim, channels)
        affine = np.array(metatensor.affine.detach().cpu().numpy(), dtype=np.float64)
        volume = cls(array, affine, system, frame_of_reference_uid, channels, from_reference_convention=space)
        return _from_monai_axis_order(volume, axis_order)  # type: ignore[return-value]  # permute/flip/with_array return Self, so the helper gives back cls's type (typed Volume there)

    def __repr__(self) -> str:
        return (f"Volume(shape={self.shape}, dtype={self.dtype}, "
                f"coordinate_system={self._coordinate_system.value}, affine={self._affine.tolist()})")


def _import_nibabel() -> Any:
    try:
        import nibabel
    except ImportError:  # pragma: no cover - nibabel is installed in development
        raise MissingDependencyError("nibabel conversion needs the 'nibabel' package") from None
    return nibabel
