"""CaseConsultant: an email consultant for medical coding."""
__version__ = "0.1.0"
