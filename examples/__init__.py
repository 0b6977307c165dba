"""Examples of the Python library; each one runs in the test suite against the test LLM."""
