"""Output heads on backbone conditioning C (B, L, H) + mask: Gen-SER (generative) and the CE baseline."""
from c2ser.heads.ce_head import CEHead, CEHeadConfig
from c2ser.heads.factory import HeadConfig, build_head
from c2ser.heads.gen_ser import GenSERConfig, GenSERHead

__all__ = ["CEHead", "CEHeadConfig", "GenSERConfig", "GenSERHead", "HeadConfig", "build_head"]
