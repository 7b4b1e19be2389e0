from setuptools import find_packages, setup

setup(
    name="c2ser",
    version="0.1.0",
    description="Fine-tuning audio-language models for speech emotion recognition (C2SER + Gen-SER)",
    packages=find_packages(include=["c2ser", "c2ser.*"]),
    python_requires=">=3.10",
    # Pinned versions live in requirements.txt (installed by scripts/setup.sh).
    install_requires=["torch", "transformers", "peft", "accelerate", "omegaconf", "numpy", "soundfile", "soxr"],
    entry_points={"console_scripts": ["c2ser=c2ser.cli:main"]},
)
