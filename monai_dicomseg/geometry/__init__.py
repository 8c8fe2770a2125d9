"""Patient/slide geometry on numpy only: affines (LPS), sorting, volumes.

Never imports torch, MONAI or pydicom (datasets are read by duck typing).
"""
