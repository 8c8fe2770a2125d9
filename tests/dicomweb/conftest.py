"""A real DICOMweb server for the tests: Orthanc with its DICOMweb plugin, on loopback only.

The session-scoped :func:`orthanc` fixture starts ``Orthanc`` (Debian packages
``orthanc`` and ``orthanc-dicomweb``) through
:func:`monai_dicomseg.dicomweb.orthanc.start_orthanc`: a free 127.0.0.1 port,
a temporary storage folder, a generated configuration (HTTP basic auth on,
``RemoteAccessAllowed`` false, DIMSE off, DICOMweb at ``/dicom-web/``) and a
Lua ``ReceivedInstanceFilter`` that refuses the Label Map Segmentation SOP
class (a real server-side STOW-RS rejection). It waits until the server
answers and stops it at the end.

Without Orthanc the tests skip with one line saying how to install it; with
``CI=true`` a missing server is a failure. Every request goes to 127.0.0.1.
"""
from __future__ import annotations


import pytest
from oracles import missing_requirement

from monai_dicomseg.dicomweb.orthanc import INSTALL_HINT, orthanc_available, start_orthanc

LABELMAP_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.7"


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory):
    """Start Orthanc + DICOMweb on loopback for the session; yield an ``OrthancServer``."""
    if not orthanc_available():
        missing_requirement(INSTALL_HINT, "the DICOMweb server")
    pytest.importorskip("dicomweb_client", reason="pip install dicomweb-client")
    with start_orthanc(tmp_path_factory.mktemp("orthanc"), password="s3cret-Pa55word",
                       refuse_sop_classes=[LABELMAP_SOP_CLASS]) as server:
        yield server
