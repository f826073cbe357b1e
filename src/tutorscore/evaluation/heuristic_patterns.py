"""Precompiled phrase patterns of the heuristic judge (English tutoring talk).

Kept apart from the scoring code so the vocabulary can be read and extended in
one place. Every pattern runs on lower-cased text; all are compiled once at
import because the judge must score hundreds of transcripts a second per core.
"""

from __future__ import annotations

import re

# Words: letters, digits, apostrophes and simple math tokens ("2x", "3.5").
WORD = re.compile(r"[a-z0-9]+(?:['.][a-z0-9]+)*")

# Leading fillers skipped before classifying a question ("So, how ...").
_LEAD = r"\s*(?:(?:so|and|okay|ok|now|then|well|but|alright|great|good|right)[,!]?\s+)*"

OPEN_QUESTION = re.compile(
    _LEAD + r"(?:how|why|what|which|where|when|who|whose|explain|describe|tell me|walk me|show me"
    r"|(?:can|could|would|will) you (?:explain|tell|show|walk|describe|think|try|figure|predict"
    r"|come up|compare|summari[sz]e)|in what way|what if)\b"
)
CLOSED_QUESTION = re.compile(
    _LEAD + r"(?:is|are|am|was|were|do|does|did|can|could|will|would|should|shall|have|has|had"
    r"|isn't|aren't|don't|doesn't|didn't|won't|ok|okay|right|got it|ready|yes|no|clear|correct"
    r"|true|agreed|make sense|sound good)\b"
)

# Checks for understanding: the tutor asks the student to confirm or show understanding.
CHECK_FOR_UNDERSTANDING = re.compile(
    r"does (?:that|this|it|everything) make sense|makes? sense\?|do you understand"
    r"|are you (?:following|with me)|(?:any|what) questions|is (?:that|this|everything) clear"
    r"|(?:can|could) you (?:explain|tell me|say|show me|walk me through|summari[sz]e)"
    r"(?: (?:it|that|this|what|how|why))*(?: back| in your own words| to me)"
    r"|in your own words|how (?:confident|sure) (?:are|do) you|does that click"
    r"|what (?:part|step) (?:is|was) (?:confusing|tricky|unclear)|tell me what you (?:think|got)"
)

# Praise of effort or process (not of ability: "you're so smart" is not counted).
PRAISE_OF_EFFORT = re.compile(
    r"(?:great|good|nice|excellent|awesome|fantastic) (?:effort|work|thinking|reasoning|try"
    r"|persistence|question|catch|observation|strategy|explanation)"
    r"|(?:good|great|nice) job (?:working|sticking|thinking|explaining|showing|checking)"
    r"|you (?:worked|tried) (?:so |really )?hard|(?:i like|i love) (?:how|that|the way) you"
    r"|you (?:didn't give up|kept going|stuck with it)|well reasoned|keep it up"
    r"|that's the right (?:idea|approach|way to think)"
)

# A goal or plan set at the start of the session.
GOAL_SETTING = re.compile(
    r"today,? (?:we(?:'ll| will| are going to|'re going to)|let's|i'd like|i want us)"
    r"|(?:our|the|today's) (?:goal|plan|objective|agenda|focus)"
    r"|by the end of (?:this|the|today's|our) (?:session|lesson|hour|time)"
    r"|let's (?:focus|start|work) on|we(?:'ll| will) (?:focus|work|cover|go over|practice)"
    r"|what would you like to (?:work on|cover|focus on)"
    r"|what do you want to (?:work on|get out of|focus on)"
)

# A recap or next steps at the end of the session.
RECAP = re.compile(
    r"to (?:recap|sum up|summari[sz]e|review)|in summary|(?:quick|let's) (?:recap|review|summar)"
    r"|today we (?:covered|learned|worked|practiced|went over|did)"
    r"|what (?:did|have) (?:you|we) learn|key (?:takeaway|idea|point)s?|for next time"
    r"|next (?:time|session),? we|homework|before (?:we finish|we end|next time)"
    r"|(?:can|could) you summari[sz]e"
)

# The tutor hands over the answer. `ans` is the first token of the given answer, so a
# tutor confirming what the student just said ("Yes, the answer is 12") is not counted.
ANSWER_GIVEAWAY = re.compile(
    r"(?:the (?:correct |right |final )?answer(?: here)? (?:is|would be|will be)"
    r"|(?:the|so the) solution is|here(?:'s| is) the (?:answer|solution)"
    r"|i'll (?:just )?(?:tell|give) you the (?:answer|solution)(?: is)?"
    r"|so [a-z] (?:=|equals))\s*:?\s*(?P<ans>-?[a-z0-9./]+)?"
)
# Cheap pre-filter of ANSWER_GIVEAWAY (with "=" in the turn).
GIVEAWAY_WORDS = frozenset("answer solution equals".split())
# A number as written in a turn ("12", "3.5", "1/2", "1,200").
NUMBER = re.compile(r"(?<![a-z])\d+(?:[.,/]\d+)*")
CONFIRMATION_START = re.compile(r"^\s*(?:yes|yeah|yep|right|correct|exactly|perfect|great|good)\b")

# A tutor reply that moves past a student question without answering it.
DISMISSAL = re.compile(
    r"let's (?:just )?(?:move on|keep going|not worry|skip|get back|speed through)|never ?mind"
    r"|(?:doesn't|does not) matter|not important|we don't have time|we still have a lot to cover"
    r"|don't worry about (?:that|it)|(?:we'll|we will) (?:get to|come back to) (?:that|it) later"
    r"|^\s*anyway|i'll skip|(?:^|\. )\s*(?:now|okay|ok),? (?:next )?let's (?:switch|look at|move)"
)
# A reply that takes up the student's turn: an answer, a correction or an acknowledgement
# ("Yes, ...", "Because ...", "Not quite, ...", "Close! ...", "I'm glad you asked ...").
ANSWER_START = re.compile(
    r"^\s*(?:yes|yeah|yep|no|nope|sure|because|good question|great question|it's|it is"
    r"|that's|that is|exactly|right|correct|perfect|not quite|close|almost|interesting"
    r"|(?:i'm )?glad you asked|let's check|let me (?:explain|show)|hmm|ah|i see"
    r"|(?:okay|ok),? so you|you|we|the|so|to|if|when)\b"
)

# Cheap pre-filters: a pattern can only match a turn holding one of these words.
CHECK_WORDS = frozenset(
    "sense makes understand following with questions clear explain tell say show walk summarize"
    " summarise words confident sure click confusing tricky unclear think got".split()
)
PRAISE_WORDS = frozenset(
    "effort work thinking reasoning try persistence question catch observation strategy"
    " explanation working sticking explaining showing checking worked tried like love didn't"
    " kept stuck reasoned keep right".split()
)

# Function words only: what the move model's "reuses the student's words" feature and the
# uptake measure skip (short on purpose: "first", "think", "good" still count there).
FUNCTION_WORDS = frozenset(
    "a an and are as at be but by can did do does for from had has have he her him his how i if"
    " in is it its it's just let's me my no not of on or our she so that the their them then"
    " there they this to us was we were what when where which who why will with would yes you"
    " your okay ok yeah um uh like right well".split()
)

# Words that carry no topic (function words and tutoring chatter): ignored when v1's
# checks compare content words (unanswered questions, "shares a content word").
STOPWORDS = frozenset(
    """
    a about above after again all also am an and any are aren't as at be because been before
    being both but by can can't could couldn't did didn't do does doesn't doing don't down
    each few for from further get gets getting got had hadn't has hasn't have haven't having he
    her here hers herself him himself his how i i'd i'll i'm i've if in into is isn't it it's
    its itself just kind know let's like maybe me mean more most my myself no nor not now of
    off ok okay on once only or other our ours out over own really right same she should so
    some such sure than thank thanks that that's the their them then there these they they're
    thing things think this those through to too um uh under until up very was wasn't we we'll
    we're were weren't what what's when where which while who why will with won't would yeah
    yes you you'd you'll you're your yours yourself going gonna want need make sense well good
    great nice hmm oh said says say see look let lets into onto next first last time much
    """.split()
)
