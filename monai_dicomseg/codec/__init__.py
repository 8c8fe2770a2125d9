"""The SEG encoder and decoder on pydicom + numpy only (no torch, no MONAI)."""
