"""ssljax: self-supervised visual representation learning in JAX/Flax."""
import setuptools

INSTALL_REQUIRES = [
    "jax>=0.10.2",
    "flax>=0.12.8",
    "optax>=0.2.8",
    "orbax-checkpoint>=0.12",
    "ml-collections>=1.0",
    "tensorflow-datasets>=4.9.10",
    "importlib_resources>=6.0",  # tfds imports it without declaring it
    "grain>=0.2.18",
    "tensorboard>=2.18",
    "numpy>=1.26",
    "pillow>=10.0",
    "simplejpeg>=1.7",  # libjpeg-turbo JPEG decoding (benchmarks/input_pipeline.py)
    "scikit-learn>=1.4",
    "matplotlib>=3.8",
    "absl-py>=2.1",
]

EXTRAS_REQUIRE = {
    # nbclient/ipykernel: the suite executes notebooks/*.ipynb.
    "test": ["pytest>=8.0", "pytest-xdist>=3.5", "nbclient>=0.10", "nbformat>=5.10",
             "ipykernel>=6.29"],
    # Only for TFDS datasets stored as tfrecord; array_record datasets need no TensorFlow.
    "tf": ["tensorflow-cpu>=2.18"],
    # Reference peer for benchmarks and parity tests (CPU wheel; no timm).
    "torch": ["torch==2.13.0"],
    # Hugging Face interop (ssljax.convert: ViTMAE directories) and its parity tests.
    "hf": ["transformers>=5.0", "safetensors>=0.4"],
    # Object-store workdirs (runtime.storage): gs:// through gcsfs (epath's fsspec backend) and
    # google-cloud-storage (which orbax asks about the bucket); s3:// through s3fs.
    "gcs": ["gcsfs>=2024.2", "google-cloud-storage>=2.14"],
    "s3": ["s3fs>=2024.2"],
    # Weights & Biases runs beside TensorBoard (`config.wandb`, runtime.wandb_writer).
    "wandb": ["wandb>=0.19"],
}

setuptools.setup(
    name="ssljax",
    version="0.1.0",
    description="Self-supervised visual representation learning (MAE, SimSiam, ...) in JAX/Flax.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=setuptools.find_packages(include=["ssljax", "ssljax.*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
)
