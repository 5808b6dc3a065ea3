"""Conversations: chat turns stored one item per message, with bounded memory and summaries."""
