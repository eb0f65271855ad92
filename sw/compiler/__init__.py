"""The compiler: from matrices and models to accelerator programs."""
