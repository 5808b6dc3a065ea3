"""Page script run by st.navigation in ui/app.py; the page itself is ui.views.transcripts."""

from ui.views import transcripts

transcripts.render()
