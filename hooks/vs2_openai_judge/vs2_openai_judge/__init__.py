"""OpenAI-compatible caption judge for vs2_plugin (entry point ``vs2: openai``).

Key and endpoint come from ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL`` (or ``api_key_file`` /
``base_url`` in the judge config); the key is never logged or written anywhere.
"""

__version__ = "0.1.0"
