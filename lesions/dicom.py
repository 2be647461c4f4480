"""DICOM export of a capture, and of its analysis overlay as a secondary capture.

A dermoscopic capture becomes a Dermoscopic Photography Image (DICOM Supplement 221, SOP Class
1.2.840.10008.5.1.4.1.1.77.1.7, modality DMS); a clinical close-up a VL Photographic Image
(PS3.3 A.33.4, modality XC). The overlay (the segmenter's outline drawn on the image) is a
Secondary Capture Image (PS3.3 A.8.1), derived, in the same study. Study = lesion, series =
capture. UIDs are derived from the record ids (2.25 form), so an export is stable: exporting
twice gives the same study, series and instance UIDs, and a PACS files them once.

Validated by dciodvfy (Debian's dicom3tools) in tests/lesions/test_dicom.py.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage
from django.utils import timezone
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from lesions.models import Analysis, BodySite, Capture

DERMOSCOPIC_PHOTOGRAPHY_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.77.1.7"
VL_PHOTOGRAPHIC_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.77.1.4"
SECONDARY_CAPTURE_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
SOFTWARE = "LesionTrack"


@dataclass(frozen=True)
class Code:
    value: str
    meaning: str
    scheme: str = "SCT"

    def item(self) -> Dataset:
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = self.value, self.scheme, self.meaning
        return item


# The ISIC archive's anatom_site_general mapped to SNOMED CT anatomic regions (DICOM CID 4031,
# "Common Anatomic Regions") and modifiers (CID 2, "Anatomic Modifier"), as in the ISIC/SIIM 2020
# challenge's DICOM files (Kurtansky et al., J Digit Imaging 2021, PMC8455739). Sites without one
# region (palms/soles, oral/genital, nail, unknown) carry no code rather than a wrong one.
TRUNK = Code("22943007", "Trunk")
ANATOMIC_REGIONS: dict[str, tuple[Code, Code | None]] = {
    BodySite.HEAD_NECK: (Code("774007", "Head and Neck"), None),
    BodySite.UPPER_EXTREMITY: (Code("53120007", "Upper limb"), None),
    BodySite.LOWER_EXTREMITY: (Code("61685007", "Lower limb"), None),
    BodySite.ANTERIOR_TORSO: (TRUNK, Code("255549009", "Anterior")),
    BodySite.POSTERIOR_TORSO: (TRUNK, Code("255551008", "Posterior")),
    BodySite.LATERAL_TORSO: (TRUNK, Code("49370004", "Lateral")),
}
SEX = {"female": "F", "male": "M", "other": "O"}


class NoOverlay(LookupError):
    """The capture has no finished analysis with an overlay yet."""


def _uid(*parts: object) -> str:
    """A UID of the 2.25 form (PS3.5 B.2: a 128-bit number under 2.25), derived from the record,
    so it is the same on every export; the site's secret keeps two sites' UIDs apart."""
    digest = hashlib.sha256("\x1f".join([settings.SECRET_KEY, *map(str, parts)]).encode()).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


def _da(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%Y%m%d")


def _tm(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%H%M%S.%f")


def _person_name(name: str) -> str:
    # PN components are separated by '^'; the app stores one free-text name.
    return name.replace("^", " ").replace("\\", " ")[:64]


def _rgb(name: str) -> np.ndarray:
    with default_storage.open(name, "rb") as handle, Image.open(io.BytesIO(handle.read())) as image:
        return np.asarray(image.convert("RGB"))


def _base(capture: Capture, sop_class: str, instance_uid: str) -> Dataset:
    lesion, patient = capture.lesion, capture.lesion.patient
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = instance_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: names are not ASCII everywhere
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, instance_uid
    now = timezone.now()
    ds.InstanceCreationDate, ds.InstanceCreationTime = _da(now), _tm(now)
    # Patient
    ds.PatientName = _person_name(patient.name)
    ds.PatientID = patient.identifier
    ds.IssuerOfPatientID = patient.clinic.name[:64]
    ds.PatientBirthDate = patient.date_of_birth.strftime("%Y%m%d") if patient.date_of_birth else ""
    ds.PatientSex = SEX.get(patient.sex, "")
    # Study: the lesion, dated by its first capture
    first = lesion.captures.order_by("taken_at", "id").values_list("taken_at", flat=True).first() or capture.taken_at
    ds.StudyInstanceUID = _uid("study", lesion.pk)
    ds.StudyID = f"L{lesion.pk}"[:16]
    ds.StudyDate, ds.StudyTime = _da(first), _tm(first)
    ds.StudyDescription = f"Skin lesion: {lesion.label}"[:64]
    ds.ReferringPhysicianName = ""
    ds.AccessionNumber = ""
    # Equipment of the export; the acquiring device is named where known
    ds.Manufacturer = ""
    ds.SoftwareVersions = SOFTWARE
    ds.InstanceNumber = 1
    ds.PatientOrientation = ""
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "01" if capture.image.name.endswith((".jpg", ".jpeg")) else "00"
    if ds.LossyImageCompression == "01":
        ds.LossyImageCompressionMethod = "ISO_10918_1"
    region = ANATOMIC_REGIONS.get(capture.lesion.body_site)
    if region is not None:
        code, modifier = region
        item = code.item()
        if modifier is not None:
            item.AnatomicRegionModifierSequence = Sequence([modifier.item()])
        ds.AnatomicRegionSequence = Sequence([item])
    ds.ContentDate, ds.ContentTime = _da(capture.taken_at), _tm(capture.taken_at)
    ds.AcquisitionDateTime = timezone.localtime(capture.taken_at).strftime("%Y%m%d%H%M%S.%f")
    return ds


def _pixels(ds: Dataset, rgb: np.ndarray) -> None:
    ds.Rows, ds.Columns = rgb.shape[:2]
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()


def _spacing(ds: Dataset, capture: Capture) -> None:
    if capture.mm_per_pixel:
        value = f"{capture.mm_per_pixel:.10g}"[:16]
        ds.PixelSpacing = [value, value]  # row, column spacing in mm; square pixels


def _encode(ds: Dataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def capture_dicom(capture: Capture) -> bytes:
    """The capture as a DICOM Part 10 file."""
    dermoscopic = capture.modality == Capture.Modality.DERMOSCOPIC
    sop_class = DERMOSCOPIC_PHOTOGRAPHY_IMAGE_STORAGE if dermoscopic else VL_PHOTOGRAPHIC_IMAGE_STORAGE
    ds = _base(capture, sop_class, _uid("capture", capture.pk))
    ds.Modality = "DMS" if dermoscopic else "XC"
    ds.SeriesInstanceUID = _uid("series", capture.pk)
    ds.SeriesNumber = 1
    ds.SeriesDescription = capture.get_modality_display()
    ds.Laterality = ""
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.ManufacturerModelName = capture.device[:64]
    ds.AcquisitionContextSequence = Sequence([])
    if dermoscopic:
        # Enhanced General Equipment is Type 1 here: the device is named where the clinic told us.
        ds.Manufacturer = "unknown"
        ds.ManufacturerModelName = capture.device[:64] or "unknown"
        ds.DeviceSerialNumber = "unknown"
        ds.FrameOfReferenceUID = _uid("frame", capture.pk)
        ds.PositionReferenceIndicator = ""
        ds.RecognizableVisualFeatures = "NO"  # a dermoscopic field of a few mm
        ds.LightSourcePolarization = ""
        ds.EmitterColorTemperature = ""
        ds.ContactMethod = ""
        ds.OpticalMagnificationFactor = ""
    _spacing(ds, capture)
    _pixels(ds, _rgb(capture.image.name))
    return _encode(ds)


def overlay_dicom(capture: Capture) -> bytes:
    """The newest finished analysis's overlay as a derived Secondary Capture in the same study."""
    analysis = (capture.analyses.filter(status=Analysis.Status.DONE).exclude(overlay="")
                .order_by("-finished_at", "-id").first())
    if analysis is None:
        raise NoOverlay(f"capture {capture.pk} has no finished analysis")
    ds = _base(capture, SECONDARY_CAPTURE_IMAGE_STORAGE, _uid("overlay", analysis.pk))
    ds.Modality = "OT"
    ds.SeriesInstanceUID = _uid("overlay-series", analysis.pk)
    ds.SeriesNumber = 2
    ds.SeriesDescription = f"Lesion outline, model {analysis.model_version}"[:64]
    ds.Laterality = ""
    ds.ConversionType = "WSD"  # made by a workstation from another image
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.DerivationDescription = (f"Segmentation outline drawn by {analysis.segmenter_name or 'the segmenter'} "
                                f"({analysis.model_version}); decision support, not a diagnosis")[:1024]
    ds.LossyImageCompression = "00"
    if "LossyImageCompressionMethod" in ds:
        del ds.LossyImageCompressionMethod
    source = Dataset()
    source.ReferencedSOPClassUID = (DERMOSCOPIC_PHOTOGRAPHY_IMAGE_STORAGE
                                    if capture.modality == Capture.Modality.DERMOSCOPIC
                                    else VL_PHOTOGRAPHIC_IMAGE_STORAGE)
    source.ReferencedSOPInstanceUID = _uid("capture", capture.pk)
    ds.SourceImageSequence = Sequence([source])
    _spacing(ds, capture)
    _pixels(ds, _rgb(analysis.overlay.name))
    return _encode(ds)
