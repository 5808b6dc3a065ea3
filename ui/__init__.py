"""Streamlit web UI over the chatbot REST API (chat, clear, summarize, transcripts).

`start_ui(api_url, host, port)` serves it as a subprocess; `ui.api_client.ChatbotApiClient` is its REST client.
"""

from ui.server import UIHandle, UIStartError, start_ui

__all__ = ["UIHandle", "UIStartError", "start_ui"]
