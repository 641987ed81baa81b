"""Coach: veteran contact-centre advice, retrieved for the situation an agent describes."""

__version__ = "0.1.0"
