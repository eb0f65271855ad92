"""Software: golden integer models, the compiler and the driver."""
