"""Page script run by st.navigation in ui/app.py; the page itself is ui.views.chat."""

from ui.views import chat

chat.render()
