"""tutorscore: scores tutoring quality and finds the tutors who need help."""

__version__ = "0.1.0"
