"""A template grammar for realistic tutoring transcripts, generated offline.

A transcript is a sequence of tutoring *moves* (greeting, goal setting, open
question, focusing and probing questions, check for understanding, uptake of
the student's words, praise of effort, recap; or telling the step, monologue,
ignoring a question, rushing, giving the answer away). Which moves a tutor makes
is drawn from their teaching quality: strong tutors mostly focus and probe
(MathDial's scaffolding moves), weak ones mostly tell, and everyone mixes, so
the judge sees a spread. Each move has many phrasings and every subject its own
problems, steps and vocabulary, so transcripts do not repeat. The judge was
trained on real dialogue (corpora/), never tuned on this text.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from tutorscore.ingest.transcript_format import Turn

# name -> (popularity weight, topics); each topic fills the templates' slots.
_CONTENT: dict[str, tuple[float, list[dict[str, str]]]] = {
    "SAT Math": (
        0.16,
        [
            {
                "topic": "linear equations",
                "problem": "3x + 5 = 20",
                "answer": "x = 5",
                "step": "subtract 5 from both sides",
                "step2": "divide both sides by 3",
                "concept": "whatever you do to one side you do to the other",
                "term": "inverse operation",
                "wrong": "I'd divide by 3 first so it's x + 5 = 20 over 3",
            },
            {
                "topic": "percent change",
                "problem": "a price going from 80 to 100 dollars",
                "answer": "25 percent",
                "step": "find the difference, which is 20",
                "step2": "divide by the original 80",
                "concept": "percent change is always compared to the starting value",
                "term": "original value",
                "wrong": "I divided 20 by 100 so it's 20 percent",
            },
            {
                "topic": "systems of equations",
                "problem": "x + y = 10 and x - y = 2",
                "answer": "x = 6 and y = 4",
                "step": "add the two equations",
                "step2": "solve for x and plug it back in",
                "concept": "adding the equations makes y cancel out",
                "term": "elimination",
                "wrong": "I set x equal to 10 and y equal to 2",
            },
            {
                "topic": "word problems with rates",
                "problem": "a car driving 150 miles in 2.5 hours",
                "answer": "60 miles per hour",
                "step": "write distance equals rate times time",
                "step2": "divide 150 by 2.5",
                "concept": "the units tell you what to divide by what",
                "term": "rate",
                "wrong": "I multiplied 150 by 2.5",
            },
        ],
    ),
    "Algebra": (
        0.14,
        [
            {
                "topic": "factoring quadratics",
                "problem": "x squared plus 5x plus 6",
                "answer": "(x + 2)(x + 3)",
                "step": "find two numbers that multiply to 6",
                "step2": "check they add up to 5",
                "concept": "factoring undoes the distributive property",
                "term": "factor",
                "wrong": "I got (x + 1)(x + 6) because 1 times 6 is 6",
            },
            {
                "topic": "slope",
                "problem": "the line through (1, 2) and (3, 8)",
                "answer": "a slope of 3",
                "step": "subtract the y values to get 6",
                "step2": "divide by the change in x, which is 2",
                "concept": "slope is rise over run",
                "term": "slope",
                "wrong": "I did 3 minus 1 over 8 minus 2 so one third",
            },
            {
                "topic": "exponent rules",
                "problem": "x cubed times x to the fourth",
                "answer": "x to the seventh",
                "step": "notice the bases are the same",
                "step2": "add the exponents",
                "concept": "multiplying powers with the same base adds the exponents",
                "term": "exponent",
                "wrong": "I multiplied 3 and 4 and got x to the twelfth",
            },
            {
                "topic": "inequalities",
                "problem": "-2x > 8",
                "answer": "x < -4",
                "step": "divide both sides by -2",
                "step2": "flip the inequality sign",
                "concept": "dividing by a negative number reverses the inequality",
                "term": "inequality",
                "wrong": "I got x > -4",
            },
        ],
    ),
    "Geometry": (
        0.06,
        [
            {
                "topic": "the Pythagorean theorem",
                "problem": "a right triangle with legs 6 and 8",
                "answer": "a hypotenuse of 10",
                "step": "square both legs",
                "step2": "take the square root of 100",
                "concept": "a squared plus b squared equals c squared",
                "term": "hypotenuse",
                "wrong": "I just added 6 and 8 to get 14",
            },
            {
                "topic": "area of circles",
                "problem": "a circle with radius 4",
                "answer": "16 pi",
                "step": "square the radius",
                "step2": "multiply by pi",
                "concept": "area grows with the square of the radius",
                "term": "radius",
                "wrong": "I did 2 times pi times 4",
            },
            {
                "topic": "angles in triangles",
                "problem": "a triangle with angles 50 and 60 degrees",
                "answer": "70 degrees",
                "step": "add the two angles we know",
                "step2": "subtract that from 180",
                "concept": "the angles in a triangle always add up to 180",
                "term": "interior angle",
                "wrong": "I subtracted from 360 and got 250",
            },
        ],
    ),
    "Calculus": (
        0.06,
        [
            {
                "topic": "the power rule",
                "problem": "the derivative of x to the fifth",
                "answer": "5x to the fourth",
                "step": "bring the exponent down in front",
                "step2": "subtract one from the exponent",
                "concept": "the derivative measures the rate of change",
                "term": "derivative",
                "wrong": "I got x to the fourth over 5",
            },
            {
                "topic": "the chain rule",
                "problem": "the derivative of (2x + 1) cubed",
                "answer": "6(2x + 1) squared",
                "step": "differentiate the outside function",
                "step2": "multiply by the derivative of the inside",
                "concept": "a function inside a function needs both derivatives",
                "term": "chain rule",
                "wrong": "I only did 3(2x + 1) squared",
            },
            {
                "topic": "limits",
                "problem": "the limit of (x squared minus 1) over (x minus 1) as x goes to 1",
                "answer": "2",
                "step": "factor the top into (x - 1)(x + 1)",
                "step2": "cancel and plug in 1",
                "concept": "a limit is about what happens near the point, not at it",
                "term": "limit",
                "wrong": "I plugged in 1 and got zero over zero so it doesn't exist",
            },
        ],
    ),
    "Chemistry": (
        0.10,
        [
            {
                "topic": "balancing equations",
                "problem": "H2 plus O2 gives H2O",
                "answer": "2H2 + O2 -> 2H2O",
                "step": "count the atoms on each side",
                "step2": "add coefficients until they match",
                "concept": "atoms are conserved in a reaction",
                "term": "coefficient",
                "wrong": "I changed the subscript to make it H2O2",
            },
            {
                "topic": "moles and molar mass",
                "problem": "36 grams of water",
                "answer": "2 moles",
                "step": "find the molar mass of water, about 18 grams per mole",
                "step2": "divide 36 by 18",
                "concept": "a mole is just a counting unit for particles",
                "term": "molar mass",
                "wrong": "I multiplied 36 by 18",
            },
            {
                "topic": "pH",
                "problem": "a solution with a hydrogen ion concentration of 10 to the minus 3",
                "answer": "a pH of 3",
                "step": "take the negative log of the concentration",
                "step2": "read off the exponent",
                "concept": "each pH unit is a factor of ten",
                "term": "logarithm",
                "wrong": "I think it's pH minus 3 so it's basic",
            },
            {
                "topic": "ionic and covalent bonds",
                "problem": "sodium chloride versus methane",
                "answer": "ionic for NaCl, covalent for CH4",
                "step": "look at whether a metal is involved",
                "step2": "compare the electronegativities",
                "concept": "ionic bonds transfer electrons while covalent bonds share them",
                "term": "electronegativity",
                "wrong": "I thought both were covalent because they're molecules",
            },
        ],
    ),
    "Biology": (
        0.09,
        [
            {
                "topic": "cellular respiration",
                "problem": "where most ATP is made",
                "answer": "the electron transport chain",
                "step": "follow glucose through glycolysis",
                "step2": "track what happens in the mitochondria",
                "concept": "cells turn the energy in glucose into ATP",
                "term": "mitochondria",
                "wrong": "I thought glycolysis makes most of the ATP",
            },
            {
                "topic": "Punnett squares",
                "problem": "crossing two Aa parents",
                "answer": "a 3 to 1 ratio",
                "step": "put each parent's alleles on a side of the square",
                "step2": "fill in each box",
                "concept": "each parent passes on one allele",
                "term": "allele",
                "wrong": "I got half and half because there are two parents",
            },
            {
                "topic": "photosynthesis",
                "problem": "the inputs and outputs of photosynthesis",
                "answer": "carbon dioxide and water in, glucose and oxygen out",
                "step": "start with the light reactions",
                "step2": "then look at the Calvin cycle",
                "concept": "plants store light energy in sugar",
                "term": "chloroplast",
                "wrong": "plants breathe in oxygen to make food",
            },
            {
                "topic": "DNA replication",
                "problem": "the strand that pairs with ATCG",
                "answer": "TAGC",
                "step": "match A with T",
                "step2": "match C with G",
                "concept": "base pairing makes copying reliable",
                "term": "base pair",
                "wrong": "I matched A with G",
            },
        ],
    ),
    "Physics": (
        0.08,
        [
            {
                "topic": "Newton's second law",
                "problem": "a 2 kilogram cart pushed with 10 newtons",
                "answer": "5 meters per second squared",
                "step": "write F equals m a",
                "step2": "divide the force by the mass",
                "concept": "the same force moves a lighter object faster",
                "term": "acceleration",
                "wrong": "I multiplied 10 by 2 and got 20",
            },
            {
                "topic": "kinematics",
                "problem": "a ball dropped from rest for 3 seconds",
                "answer": "about 29 meters per second",
                "step": "use v equals a t",
                "step2": "plug in 9.8 for gravity",
                "concept": "velocity increases steadily under constant acceleration",
                "term": "velocity",
                "wrong": "it falls at a constant speed so 9.8",
            },
            {
                "topic": "energy conservation",
                "problem": "a 1 kilogram ball dropped from 5 meters",
                "answer": "about 49 joules",
                "step": "compute the potential energy m g h",
                "step2": "set it equal to the kinetic energy at the bottom",
                "concept": "energy changes form but the total stays the same",
                "term": "potential energy",
                "wrong": "the energy is lost when it falls",
            },
            {
                "topic": "circuits",
                "problem": "a 12 volt battery across a 4 ohm resistor",
                "answer": "3 amps",
                "step": "write Ohm's law, V equals I R",
                "step2": "divide the voltage by the resistance",
                "concept": "resistance limits how much current flows",
                "term": "current",
                "wrong": "I multiplied and got 48 amps",
            },
        ],
    ),
    "English Essay": (
        0.10,
        [
            {
                "topic": "thesis statements",
                "problem": "your essay on The Great Gatsby",
                "answer": "Gatsby's dream shows how wealth cannot buy belonging",
                "step": "pick one clear claim",
                "step2": "make sure someone could argue against it",
                "concept": "a thesis is an argument, not a fact",
                "term": "thesis",
                "wrong": "my thesis is that the book is about a rich guy",
            },
            {
                "topic": "using evidence",
                "problem": "your second body paragraph",
                "answer": "add the green light quote and explain it",
                "step": "choose a quote that supports the claim",
                "step2": "explain how the quote proves it",
                "concept": "evidence needs analysis, not just quotes",
                "term": "analysis",
                "wrong": "I just put three quotes in a row",
            },
            {
                "topic": "topic sentences",
                "problem": "the paragraph about symbolism",
                "answer": "start with the claim that the valley of ashes shows moral decay",
                "step": "state the paragraph's main point first",
                "step2": "link it back to the thesis",
                "concept": "each paragraph should prove one part of the thesis",
                "term": "topic sentence",
                "wrong": "I started with a quote because it sounds cool",
            },
            {
                "topic": "conclusions",
                "problem": "your conclusion",
                "answer": "restate the thesis and say why it matters today",
                "step": "restate the argument in new words",
                "step2": "zoom out to a bigger idea",
                "concept": "a conclusion answers so what",
                "term": "synthesis",
                "wrong": "I just copied my introduction",
            },
        ],
    ),
    "AP History": (
        0.07,
        [
            {
                "topic": "causes of World War I",
                "problem": "the long-term causes of the war",
                "answer": "militarism, alliances, imperialism and nationalism",
                "step": "separate long-term causes from the trigger",
                "step2": "connect each cause to an example",
                "concept": "big events usually have several causes",
                "term": "causation",
                "wrong": "it was only because of the assassination",
            },
            {
                "topic": "the New Deal",
                "problem": "how the New Deal changed government",
                "answer": "it expanded the federal government's role in the economy",
                "step": "list the main programs",
                "step2": "compare government before and after",
                "concept": "continuity and change over time",
                "term": "relief, recovery and reform",
                "wrong": "the New Deal ended the Depression right away",
            },
            {
                "topic": "DBQ essays",
                "problem": "the document about factory conditions",
                "answer": "use it to argue industrialisation harmed workers and source it",
                "step": "read the source line first",
                "step2": "explain the author's point of view",
                "concept": "sourcing shows why a document says what it says",
                "term": "sourcing",
                "wrong": "I just summarized what the document says",
            },
        ],
    ),
    "Spanish": (
        0.07,
        [
            {
                "topic": "preterite versus imperfect",
                "problem": "'Cuando era nino, jugaba al futbol'",
                "answer": "imperfect, because it was a habit in the past",
                "step": "ask whether the action was completed or ongoing",
                "step2": "look for trigger words like siempre",
                "concept": "the preterite is for finished actions, the imperfect for habits",
                "term": "imperfect",
                "wrong": "preterite, because it's in the past",
            },
            {
                "topic": "ser and estar",
                "problem": "'La sopa ___ fria'",
                "answer": "esta",
                "step": "ask whether it's a lasting trait or a condition",
                "step2": "pick estar for conditions",
                "concept": "estar describes states that can change",
                "term": "estar",
                "wrong": "es, because soup is always soup",
            },
            {
                "topic": "stem-changing verbs",
                "problem": "'poder' with yo",
                "answer": "puedo",
                "step": "find the stem",
                "step2": "change o to ue except in nosotros",
                "concept": "the stem changes when it's stressed",
                "term": "stem change",
                "wrong": "podo, like a regular verb",
            },
        ],
    ),
    "Computer Science": (
        0.07,
        [
            {
                "topic": "loops",
                "problem": "summing the numbers from 1 to 10",
                "answer": "55",
                "step": "start a total at zero",
                "step2": "add each number inside the loop",
                "concept": "a loop repeats the same step with a changing value",
                "term": "iteration",
                "wrong": "I put the total inside the loop so it resets",
            },
            {
                "topic": "recursion",
                "problem": "factorial of 4",
                "answer": "24",
                "step": "write the base case for 1",
                "step2": "call the function on n minus 1",
                "concept": "every recursive call has to move toward the base case",
                "term": "base case",
                "wrong": "I didn't put a base case so it runs forever",
            },
            {
                "topic": "lists and indexing",
                "problem": "getting the last item of a list",
                "answer": "items[-1]",
                "step": "remember indexes start at zero",
                "step2": "use a negative index from the end",
                "concept": "the index is an offset from the start",
                "term": "index",
                "wrong": "items[len(items)]",
            },
        ],
    ),
}

SUBJECTS: tuple[str, ...] = tuple(_CONTENT)
_raw_weights = [w for w, _ in _CONTENT.values()]
SUBJECT_WEIGHTS: tuple[float, ...] = tuple(w / sum(_raw_weights) for w in _raw_weights)

GOOD_MOVES = frozenset(
    {"goal_setting", "open_question", "check_understanding", "uptake", "praise_effort",
     "student_explains", "recap", "answers_question", "focusing", "probing"}
)  # fmt: skip
POOR_MOVES = frozenset(
    {"monologue", "ignored_question", "rushing", "gives_answer", "no_goal", "telling"}
)

# ------------------------------------------------------------------------ phrasings
T_GREET_FIRST = (
    "Hi {student}! I'm {tutor}, and I'll be working with you on {subject}. Nice to meet you.",
    "Hey {student}, welcome! My name is {tutor}. It's our first session, so tell me about you.",
    "Hello {student}, I'm {tutor}. Thanks for booking a session. How's your day going?",
    "Hi there {student}! I'm {tutor}. I've tutored {subject} for years and I'm excited to start.",
    "Good to meet you, {student}. I'm {tutor}. First, tell me about your {subject} class.",
)
T_GREET_AGAIN = (
    "Hey {student}, good to see you again! How did the last assignment go?",
    "Hi {student}! Welcome back. How's {subject} going this week?",
    "Hello again {student}. Ready to pick up where we left off?",
    "Hi {student}, nice to see you. Anything come up in class since last time?",
    "Hey {student}! How are you feeling about {subject} today?",
)
T_GREET_FLAT = (
    "Hi. Let's start.",
    "Okay, you're here. Let's begin.",
    "Hello. Do you have your stuff ready?",
    "Hi {student}. We have a lot to cover.",
)
S_GREET = (
    "Hi! Good, thanks.",
    "Hey, nice to meet you.",
    "Hi, I'm okay. A bit stressed about {subject} honestly.",
    "Hello! Yeah I'm ready.",
    "Hi. My teacher said I should get some help with {topic}.",
    "Hey! Pretty good, just tired from school.",
    "Hi, yes, sorry I'm a little late logging on.",
)
T_GOAL_ASK = (
    "What would you like to get out of today's session?",
    "Before we start, what's one thing you want to feel confident about by the end of today?",
    "What are you working on in class right now, and where do you feel stuck?",
    "Let's set a goal for today. What would make this session feel worth it for you?",
    "What's coming up for you, a test, homework, a project? Let's plan around it.",
    "If we only had time for one thing today, what should it be?",
)
S_GOAL = (
    "I want to get better at {topic} before my test on Friday.",
    "I keep getting stuck on {topic}, like problems with {problem}.",
    "Honestly {topic}. I don't really get it.",
    "My homework is on {topic} and I'm lost.",
    "I want to understand {topic} instead of just memorizing it.",
    "We have a quiz on {topic} next week.",
)
T_GOAL_SET = (
    "Great, so our goal today is {topic}. By the end I want you to do {problem} on your own.",
    "Okay, let's make {topic} our focus. You said \"{quote}\", so we'll work on that.",
    "Perfect. Goal for today: {topic}. We'll start easy and build up.",
    "That's a good goal. Let's aim for you explaining {topic} back to me by the end.",
    "Sounds like a plan: {topic} today, and we'll save a few minutes at the end to recap.",
)
T_NO_GOAL = (
    "Okay, today is {topic}. Let's just get started.",
    "Right, {topic}. Open your book to the practice problems.",
    "We're doing {topic} today. I'll go through it.",
    "Let's jump in, {topic}. There's a lot to get through.",
)
T_EXPLAIN = (
    "The key idea is that {concept}. Let's try it on {problem}.",
    "Here's how I think about it: {concept}. Keep that in mind for {problem}.",
    "Quick idea before we start: {concept}. That's what {term} is about.",
    "So the big picture is {concept}. Let's look at {problem}.",
    "One thing that helps: {concept}.",
)
T_OPEN_Q = (
    "How would you start {problem}?",
    "What do you notice about {problem}?",
    "Why do you think {concept}?",
    "What would happen if we {step}?",
    "How would you explain {term} in your own words?",
    "Where do you think we should begin with {problem}?",
    "What's your plan for {problem}? Talk me through your thinking.",
    "What do you already know that might help with {problem}?",
    "Can you walk me through how you'd approach {problem}?",
    "What's the first thing you'd try here, and why?",
)
T_FOCUS = (
    "Let's focus on the first step. What do you get when you {step}?",
    "What's the first thing we need to find in {problem}?",
    "Let's just look at the {term}. What does it tell us here?",
    "Try to {step} first. What do you get?",
    "Which part of {problem} should we work out before anything else?",
    "If you {step}, what does {problem} turn into?",
    "What do we know already, and what are we trying to find?",
    "Let's slow down on one piece: what happens when you {step2}?",
)
T_PROBE = (
    "How did you get that?",
    "Can you explain why you'd {step}?",
    "What made you think of that?",
    "How could you check that answer?",
    "Why does that work?",
    "Walk me through your steps. Where did the numbers come from?",
    "Are you sure about that step? Look at it again and tell me what you see.",
    "What would happen if that were true? Does it fit {problem}?",
)
T_TELL_STEP = (
    "You need to {step}, and then {step2}. That gives you {answer}.",
    "First {step}. Then {step2}, so it's {answer}.",
    "Remember, {concept}. So you {step} and you get {answer}.",
    "No, you have to {step} before you {step2}. The result is {answer}.",
    "The rule is that {concept}, so just {step2} and write {answer}.",
)
T_NEXT_TELL = (
    "Next one is {problem}: you {step}, then {step2}, and it comes out to {answer}.",
    "Same thing with {problem}. You {step} and {step2}, which gives {answer}.",
    "Now {problem}. It's the same steps, {step} and then {step2}, so the answer is {answer}.",
)
T_CLOSED_Q = ("Got it?", "Okay?", "Right?", "Understand?", "Make sense? Okay, moving on.")
MONOLOGUE_SENTENCES = (
    "So {topic} is really important and it shows up everywhere.",
    "The thing you need to remember is that {concept}.",
    "First you {step}, and then you {step2}, and that's basically it.",
    "A lot of students get this wrong because they forget that {concept}.",
    "If you look at {problem}, you {step}, then you {step2}.",
    "The {term} is the part that matters most here.",
    "You'll see this on the test, so just memorize the steps.",
    "There's also a shortcut, which is to {step2} right away, but don't worry about that.",
    "It's the same thing every time, you {step} and you're done.",
    "I've explained this to a lot of people and it's really not that hard once you see it.",
    "Then we can do a few more like {problem} and you'll get the hang of it.",
    "Basically {concept}, so the answer comes out to {answer}.",
)
S_ATTEMPT = (
    "I think first you {step}, because {concept}.",
    "So I'd {step} and then {step2}?",
    "Um, maybe {step}? I'm not sure why though.",
    "Okay so if I {step}, then I need to {step2}, right?",
    "I'd probably {step} first. Then {step2} and that gives {answer}?",
    "Hmm, I think it has to do with {term}. Like {concept}?",
    "I remember something about {term}, so maybe I {step}.",
)
S_WRONG = (
    "Um, {wrong}?",
    "I think {wrong}.",
    "Is it... {wrong}?",
    "Last time {wrong}, is that right?",
)
S_ACK = ("Okay.", "Yeah.", "Mm-hm.", "Got it.", "I guess.", "Sure.", "Okay, I think so.", "Yep.")
S_QUESTION = (
    "Wait, why do we {step}?",
    "What does {term} mean exactly?",
    "Can you go over that part again? I got lost.",
    "Sorry, how did you get {answer}?",
    "Why can't we just {step2} first?",
    "Is this going to be on the test?",
    "I don't get why {concept}.",
)
T_ANSWER_Q = (
    "Good question. We {step} because {concept}. Does that help?",
    "I'm glad you asked. Think of it this way: {concept}. What do you think now?",
    "Great question, that trips a lot of people up. The reason is that {concept}.",
    "Let's slow down on that. {term} just means that {concept}. Want to try one?",
)
T_IGNORE_Q = (
    "Anyway, let's look at the next one.",
    "We don't have time for that, let's keep going.",
    "Don't worry about that. Next problem.",
    "Let's move on.",
    "That's not important right now.",
)
T_UPTAKE = (
    'You said "{quote}". That\'s exactly the key point.',
    'I like that you said "{quote}". Can you say more about that?',
    'Right, "{quote}". So what would you do next?',
    'Yes, "{quote}" is the heart of it. Why does that work?',
    "Okay, so you're saying \"{quote}\". Let's build on that.",
    'When you said "{quote}", you were already doing the hard part.',
)
T_PRAISE_EFFORT = (
    "Nice persistence, you stuck with that even when it got tricky.",
    "I can see you're really thinking this through. That effort pays off.",
    "Great job working through that step by step.",
    "I love that you tried it before asking. That's how you learn it.",
    "You're getting much more confident with this, keep it up.",
    "That was a tough one and you didn't give up. Well done.",
)
T_CORRECT_GENTLY = (
    "Close! Let's check that together. What happens if we {step} first?",
    "That's a really common idea, but let's test it. What does {term} tell us?",
    "Not quite, but I can see your thinking. Remember that {concept}. Want to try again?",
    "Interesting, walk me through how you got that.",
)
T_GIVE_ANSWER = (
    "The answer is {answer}.",
    "No, it's {answer}. Just write that down.",
    "It's just {answer}, moving on.",
    "Okay, the answer is {answer}. Next.",
    "You {step} and {step2}, so it's {answer}. Done.",
)
T_CHECK = (
    "Does that make sense?",
    "Can you explain back to me why we {step}?",
    "How would you explain this to a friend who missed class?",
    "In your own words, what's the first step?",
    "What questions do you have so far?",
    "Can you tell me why that works?",
    "On a scale of 1 to 5, how confident do you feel about {topic} now?",
    "Can you explain back what {term} means?",
)
S_EXPLAIN_BACK = (
    "So basically {concept}, and that's why we {step}.",
    "You {step} first because {concept}, then you {step2}.",
    "It's like, {term} means {concept}. So for {problem} I'd {step}.",
    "I think I get it now. {concept}, so you {step} and then {step2}.",
    "Yeah, it makes sense. {concept}.",
)
T_RUSH = (
    "We're short on time so I'll just do this one quickly.",
    "Let's speed through these, we still have a lot to cover.",
    "I'll skip the explanation on this one, it's the same as before.",
    "Quickly, quickly, we need to get through the whole worksheet.",
)
T_NEXT = (
    "Let's try another one: {problem}.",
    "Okay, next let's look at {problem}.",
    "Now let's switch to {topic}.",
    "Ready for something a bit harder? {problem}.",
)
T_RECAP = (
    "Let's recap. Today we worked on {topic}: you learned to {step} and then {step2}. "
    "For next time, try two more like {problem}.",
    "Before we finish, can you summarize what we covered today?",
    "To wrap up: the big idea was that {concept}. You did great with it today.",
    "So to recap, we set out to get comfortable with {topic}, and now you can do {problem}.",
    "Let's review what you learned today and pick one thing to practice before next session.",
)
S_SUMMARY = (
    "Today I learned how to {step} and that {concept}.",
    "We did {topic}. I get why we {step} now.",
    "Um, {topic}, and the main thing is {concept}.",
    "I'm going to practice {problem} type questions.",
)
T_CLOSE_GOOD = (
    "Awesome work today, {student}. I'll see you next week!",
    "Great session. Keep practicing and bring any questions next time.",
    "You should be proud of how much you did today. See you soon!",
    "Nice job. Good luck on the test, let me know how it goes.",
)
T_CLOSE_POOR = (
    "Okay, that's time. Bye.",
    "Alright, we're done for today.",
    "That's all we have time for.",
    "Okay, I have to go. Do the rest for homework.",
)
S_CLOSE = (
    "Thanks so much!",
    "Thank you, this helped a lot.",
    "Okay, bye.",
    "Thanks, see you.",
    "Bye!",
)
S_PII = (
    "Oh, can you send the worksheet to my email? It's {email}.",
    "My mom said you can text her at {phone} about scheduling.",
    "My email is {email} if you want to send the notes.",
)
T_PII = (
    "I'll send the practice set to {email} after this.",
    "If the video drops, call me at {phone}.",
)


@dataclass
class GeneratedTranscript:
    """Turns plus the moves that produced them (behaviours feed tests and docs, not the DB)."""

    turns: list[Turn]
    behaviours: Counter[str] = field(default_factory=Counter)

    @property
    def good_moves(self) -> int:
        return sum(n for move, n in self.behaviours.items() if move in GOOD_MOVES)

    @property
    def poor_moves(self) -> int:
        return sum(n for move, n in self.behaviours.items() if move in POOR_MOVES)


_WORD = re.compile(r"[A-Za-z0-9'\-]+")


class _Builder:
    def __init__(self, rng: random.Random, slots: dict[str, str]) -> None:
        self.rng = rng
        self.slots = slots
        self.turns: list[Turn] = []
        self.behaviours: Counter[str] = Counter()
        self.clock = 0.0

    def say(self, speaker: str, options: tuple[str, ...] | str, move: str | None = None) -> str:
        template = options if isinstance(options, str) else self.rng.choice(options)
        line = template.format(**self.slots)
        line = line[0].upper() + line[1:]
        if move:
            self.behaviours[move] += 1
        if self.turns and self.turns[-1]["speaker"] == speaker:
            self.turns[-1]["text"] += " " + line
        else:
            self.clock += self.rng.uniform(0.4, 2.5)
            self.turns.append({"speaker": speaker, "text": line, "start_s": round(self.clock, 1)})
        self.clock += len(line.split()) / self.rng.uniform(2.2, 3.0)
        if speaker == "student":
            self.slots["quote"] = self._fragment(line)
        return line

    def _fragment(self, line: str) -> str:
        """3-6 consecutive words of the student's line, verbatim (for the tutor's uptake)."""
        words = list(_WORD.finditer(line))
        if len(words) <= 4:
            return line.rstrip(".?!")
        size = self.rng.randint(3, min(6, len(words)))
        begin = self.rng.randint(0, len(words) - size)
        return line[words[begin].start() : words[begin + size - 1].end()]


def generate_transcript(
    rng: random.Random,
    *,
    subject: str,
    tutor_name: str,
    student_name: str,
    quality: float,
    first_session: bool,
    duration_minutes: int = 60,
) -> GeneratedTranscript:
    """One transcript of 10-80 turns; `quality` in [0, 1] sets how good the tutoring is.

    A tutor with quality q makes the good choice at each decision with probability
    near q (plus per-session noise), so strong tutors mostly ask open questions,
    check understanding and build on the student's words, and weak tutors mostly
    lecture, ignore questions, rush and give answers away.
    """
    topics = _CONTENT.get(subject, _CONTENT["Algebra"])[1]
    order = rng.sample(topics, k=len(topics))
    first_name = student_name.split()[0]
    email_user = re.sub(r"[^a-z]", "", student_name.lower().replace(" ", "."))
    slots = dict(order[0])
    slots.update(
        subject=subject,
        tutor=tutor_name,
        student=first_name,
        quote=order[0]["topic"],
        email=f"{email_user}{rng.randint(1, 99)}@example.com",
        phone=f"555-01{rng.randint(0, 99):02d}",
    )
    b = _Builder(rng, slots)
    q = min(1.0, max(0.0, quality + rng.gauss(0.0, 0.08)))

    def good() -> bool:
        return rng.random() < q

    target = int(rng.gauss(max(duration_minutes, 15) * 0.8, 6.0))
    if q < 0.45:
        target = int(target * 0.7)  # long tutor turns: fewer of them
    target = min(76, max(12, target))
    closing_turns = 4 if q >= 0.45 else 2

    _opening(b, good, first_session)
    pii_at = rng.randint(4, max(5, target - closing_turns - 2)) if rng.random() < 0.3 else -1

    topic_index = 0
    while len(b.turns) < target - closing_turns:
        prompt = _tutor_prompt(b, rng, good)
        reply = _student_reply(b, rng, prompt)
        if 0 < pii_at <= len(b.turns):
            _personal_details(b, rng)
            pii_at = -1
        if reply == "question":
            _answer_question(b, good)
        elif good():
            _good_follow_up(b, rng, reply)
        else:
            _poor_follow_up(b, rng, reply)
        topic_index += 1
        _next_topic(b, good, order[topic_index % len(order)], target - closing_turns)
    _closing(b, rng, good, q)
    return GeneratedTranscript(turns=_bounded(b.turns), behaviours=b.behaviours)


# --- the phases of one problem in generate_transcript; each draws from `rng` in the
# same order as the others expect (the generated data is reproducible by seed)


def _opening(b: _Builder, good: Callable[[], bool], first_session: bool) -> None:
    b.say("tutor", T_GREET_FIRST if first_session and good() else
          T_GREET_AGAIN if good() else T_GREET_FLAT)  # fmt: skip
    b.say("student", S_GREET)
    if good():
        b.say("tutor", T_GOAL_ASK, "goal_setting")
        b.say("student", S_GOAL)
        b.say("tutor", T_GOAL_SET, "goal_setting")
    else:
        b.say("tutor", T_NO_GOAL, "no_goal")


def _tutor_prompt(b: _Builder, rng: random.Random, good: Callable[[], bool]) -> str:
    """The tutor's prompt: open question (maybe after a short explanation), or lecture."""
    if b.turns[-1]["speaker"] == "tutor" and len(b.turns) > 3:
        b.say("student", S_ACK)
    if good():
        if rng.random() < 0.3:
            b.say("tutor", T_EXPLAIN, "telling")
        if rng.random() < 0.5:
            b.say("tutor", T_FOCUS, "focusing")
        else:
            b.say("tutor", T_OPEN_Q, "open_question")
        return "open"
    if rng.random() < 0.6:
        sentences = rng.sample(MONOLOGUE_SENTENCES, k=rng.randint(4, 7))
        b.say("tutor", " ".join(sentences), "monologue")
        if rng.random() < 0.5:
            b.say("tutor", T_CLOSED_Q)
        return "lecture"
    b.say("tutor", T_TELL_STEP, "telling")
    b.say("tutor", T_CLOSED_Q)
    return "closed"


def _student_reply(b: _Builder, rng: random.Random, prompt: str) -> str:
    r = rng.random()
    if prompt == "open":
        if r < 0.3:
            b.say("student", S_WRONG)
            return "wrong"
        b.say("student", S_ATTEMPT, "student_explains")
        return "attempt"
    if r < 0.35:
        b.say("student", S_QUESTION)
        return "question"
    if r < 0.5:
        b.say("student", S_WRONG)
        return "wrong"
    b.say("student", S_ACK)
    return "ack"


def _personal_details(b: _Builder, rng: random.Random) -> None:
    """Someone mentions contact details (what redaction must catch)."""
    if rng.random() < 0.7:
        b.say("student", S_PII)
        b.say("tutor", "Sure, will do.")
    else:
        b.say("tutor", T_PII)
        b.say("student", S_ACK)


def _answer_question(b: _Builder, good: Callable[[], bool]) -> None:
    if good():
        b.say("tutor", T_ANSWER_Q, "answers_question")
    else:
        b.say("tutor", T_IGNORE_Q, "ignored_question")


def _good_follow_up(b: _Builder, rng: random.Random, reply: str) -> None:
    """Uptake of an attempt, or probing a wrong answer; then maybe a check."""
    if reply == "attempt":
        b.say("tutor", T_UPTAKE, "uptake")
        if rng.random() < 0.4:
            b.say("student", S_ATTEMPT, "student_explains")
            b.say("tutor", T_PROBE, "probing")
        elif rng.random() < 0.5:
            b.say("tutor", T_PRAISE_EFFORT, "praise_effort")
    else:
        b.say("tutor", T_CORRECT_GENTLY if rng.random() < 0.5 else T_PROBE, "probing")
        b.say("student", S_ATTEMPT, "student_explains")
        b.say("tutor", T_UPTAKE, "uptake")
        if rng.random() < 0.4:
            b.say("student", S_ACK)
            b.say("tutor", T_FOCUS, "focusing")
    if rng.random() < 0.6:
        b.say("tutor", T_CHECK, "check_understanding")
        b.say("student", S_EXPLAIN_BACK, "student_explains")
        if rng.random() < 0.5:
            b.say("tutor", T_PRAISE_EFFORT, "praise_effort")


def _poor_follow_up(b: _Builder, rng: random.Random, reply: str) -> None:
    """Rushing, telling the step, giving the answer away."""
    if rng.random() < 0.35:
        b.say("tutor", T_RUSH, "rushing")
    if reply in ("wrong", "attempt") and rng.random() < 0.6:
        b.say("tutor", T_TELL_STEP, "telling")
        b.say("student", S_ACK)
    if reply in ("wrong", "attempt", "ack") and rng.random() < 0.6:
        b.say("tutor", T_GIVE_ANSWER, "gives_answer")


def _next_topic(
    b: _Builder, good: Callable[[], bool], nxt: dict[str, str], body_turns: int
) -> None:
    """On to the next problem or topic (announced while the body has room)."""
    b.slots.update({k: v for k, v in nxt.items() if k != "quote"})
    if b.turns[-1]["speaker"] == "tutor":
        b.say("student", S_ACK)
    if len(b.turns) < body_turns:
        if good():
            b.say("tutor", T_NEXT)
        else:
            b.say("tutor", T_NEXT_TELL, "telling")


def _closing(b: _Builder, rng: random.Random, good: Callable[[], bool], q: float) -> None:
    if b.turns[-1]["speaker"] == "tutor":
        b.say("student", S_ACK)
    if q >= 0.45 and good() or rng.random() < 0.2:
        b.say("tutor", T_RECAP, "recap")
        b.say("student", S_SUMMARY)
        b.say("tutor", T_CLOSE_GOOD)
    else:
        b.say("tutor", T_CLOSE_POOR)
    b.say("student", S_CLOSE)


def _bounded(turns: list[Turn]) -> list[Turn]:
    """Keep transcripts within 10-80 turns: trim the middle if long, pad if short."""
    if len(turns) > 80:
        turns = turns[:40] + turns[-40:]
    while len(turns) < 10:
        last = turns[-1]
        speaker = "student" if last["speaker"] == "tutor" else "tutor"
        text = "Okay." if speaker == "student" else "Anything else before we go?"
        turns.append({"speaker": speaker, "text": text, "start_s": last.get("start_s", 0.0) + 2.0})
    return turns
