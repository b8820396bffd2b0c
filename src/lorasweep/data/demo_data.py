"""A deterministic generator of Chinese people-relation examples (the demo task).

Each example is a sentence, two person names and the relation between those two
people. Sentences often mention a third person who is related to one of them,
so the answer depends on *which* pair is asked about: a model cannot succeed
by spotting a keyword, which is why a small model needs hundreds of examples.
"""
from __future__ import annotations

import random

LABELS = ["夫妻", "父母", "兄弟姐妹", "师生", "同学", "好友", "上下级", "合作", "祖孙", "不确定"]
UNKNOWN = "不确定"

_SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹"
                 "彭曾萧田董袁潘蒋蔡余杜叶程苏魏吕丁任沈姚卢")
_GIVEN = list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红鹏飞文辉"
              "建国志海燕俊峰慧宇晨浩然思源佳琪雨欣梓涵子轩一鸣")
_PLACES = ["北京", "上海", "杭州", "南京", "成都", "西安", "广州", "武汉", "苏州", "长沙", "天津", "青岛"]
_YEARS = [str(y) for y in range(1950, 2021)]
_EVENTS = ["婚礼", "颁奖典礼", "新书发布会", "学术会议", "校庆活动", "慈善晚宴", "座谈会", "展览开幕式"]
_FIELDS = ["物理学", "文学", "经济学", "医学", "建筑", "音乐", "历史学", "计算机"]
_ORGS = ["研究所", "出版社", "设计院", "医院", "报社", "科技公司", "剧团", "银行"]

# Templates per relation, over the asked pair {a},{b} and an optional third
# person {c}. Several are phrased from either side so the order varies.
_TEMPLATES: dict[str, list[str]] = {
    "夫妻": [
        "{year}年，{a}与{b}在{place}结婚，婚后育有一子。",
        "{a}的丈夫{b}是一位{field}教授，两人相识于{place}。",
        "在{event}上，{a}携妻子{b}一同出席，{c}也在场。",
        "{b}和{a}结为伉俪已有三十年，{c}是他们的证婚人。",
        "{a}在回忆录中写道，妻子{b}一直支持他的{field}研究。",
    ],
    "父母": [
        "{a}是{b}的父亲，{b}从小跟随他学习{field}。",
        "{b}出生于{place}，母亲{a}是当地有名的医生。",
        "{year}年，{a}带着女儿{b}来到{place}定居。",
        "{b}在采访中说，父亲{a}对自己影响最大，而{c}只是他的同事。",
        "{a}的儿子{b}后来继承了家族的{org}。",
    ],
    "兄弟姐妹": [
        "{a}和哥哥{b}一起在{place}长大。",
        "{b}是{a}的妹妹，两人都从事{field}工作。",
        "{a}与弟弟{b}在{event}上同台亮相，{c}为他们颁奖。",
        "{b}和姐姐{a}合开了一家{org}。",
        "{a}、{b}两兄弟先后考入{place}的大学。",
    ],
    "师生": [
        "{b}在{place}读研究生时，导师是{a}。",
        "{a}是{b}的老师，曾指导他完成{field}论文。",
        "{year}年，{b}拜{a}为师，学习{field}。",
        "{a}在{event}上介绍了自己的学生{b}，{c}对此表示祝贺。",
        "作为{a}的得意门生，{b}继承了他的{field}思想。",
    ],
    "同学": [
        "{a}和{b}是{place}某中学的同班同学。",
        "{year}年，{a}与{b}同时考入大学，成为{field}系的同学。",
        "{b}回忆说，大学时和{a}住在同一间宿舍，{c}是隔壁班的。",
        "在{event}上，{a}遇到了多年未见的老同学{b}。",
        "{a}与{b}在{place}读书时同窗四年。",
    ],
    "好友": [
        "{a}和{b}是多年的好友，经常一起去{place}旅行。",
        "{b}称{a}是自己最要好的朋友。",
        "{a}与{b}相交数十年，情同手足，{c}也常来聚会。",
        "在{event}上，{a}特意感谢了挚友{b}。",
        "{b}和{a}因共同喜爱{field}而结为好友。",
    ],
    "上下级": [
        "{a}是{b}在{org}的上司。",
        "{year}年，{b}进入{org}工作，直属领导是{a}。",
        "{a}担任{org}院长期间，{b}是他的下属。",
        "{b}在{event}上说，老板{a}对员工要求很严格，{c}对此深有同感。",
        "{a}提拔{b}为{org}的部门经理。",
    ],
    "合作": [
        "{a}和{b}合著了一本关于{field}的书。",
        "{year}年，{a}与{b}联合创办了一家{org}。",
        "{b}与{a}合作完成了{place}的{field}项目，{c}负责宣传。",
        "{a}和{b}在{event}上共同发布了研究成果。",
        "{b}邀请{a}一起主演了一部关于{place}的电影。",
    ],
    "祖孙": [
        "{a}是{b}的爷爷，{b}从小在{place}由他抚养长大。",
        "{b}的外婆{a}今年已经九十岁了。",
        "{year}年，{a}带着孙子{b}参加了{event}。",
        "{b}在书中写到了祖父{a}的故事，{c}为此书作序。",
        "{a}把毕生收藏留给了孙女{b}。",
    ],
    UNKNOWN: [
        "{a}和{b}都出席了在{place}举行的{event}。",
        "{year}年，{a}和{b}分别获得了{field}奖。",
        "{a}的妻子{c}在{event}上遇到了{b}。",
        "{a}是{c}的老师，而{b}是{c}的同事。",
        "据{org}报道，{a}和{b}都曾在{place}生活过。",
        "{b}的哥哥{c}与{a}是大学同学。",
    ],
}


# Clauses that put a bystander {c} into any sentence.
_BYSTANDER_PREFIX = ["据{c}回忆，", "{c}介绍说，", "在{c}看来，", "{c}透露，"]
_BYSTANDER_SUFFIX = ["{c}也在场。", "{c}对此发表了评论。", "此事由{c}首先报道。", "{c}后来提起过这件事。"]


def _name(rng: random.Random, taken: set[str]) -> str:
    while True:
        n = rng.choice(_SURNAMES) + "".join(rng.choice(_GIVEN) for _ in range(rng.choice((1, 2))))
        if n not in taken:
            taken.add(n)
            return n


def _with_bystander(rng: random.Random, tpl: str) -> str:
    if "{c}" in tpl:
        return tpl
    if rng.random() < 0.5:
        return rng.choice(_BYSTANDER_PREFIX) + tpl
    return tpl.rstrip("。") + "，" + rng.choice(_BYSTANDER_SUFFIX)


def generate(n: int, seed: int = 0) -> list[dict[str, str]]:
    """`n` examples with keys text, entity1, entity2, label; same seed, same data.

    Most sentences name three people: a related pair and a bystander. Asked
    about the pair, the answer is their relation; asked about the bystander
    and one of the pair, it is "unknown". The same sentence can therefore
    carry either answer, and only reading which two people the relation
    links tells them apart. "Unknown" is about twice as common as each other
    class, as in real relation data.
    """
    rng = random.Random(seed)
    relations = [lab for lab in LABELS if lab != UNKNOWN]
    weights = [2.0 if lab == UNKNOWN else 1.0 for lab in LABELS]
    seen: set[str] = set()
    out: list[dict[str, str]] = []
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > n * 50:
            raise RuntimeError(f"could not generate {n} distinct examples")
        label = rng.choices(LABELS, weights=weights)[0]
        taken: set[str] = set()
        a, b, c = _name(rng, taken), _name(rng, taken), _name(rng, taken)
        if label == UNKNOWN and rng.random() < 0.7:
            # A related pair plus a bystander; ask about the bystander.
            tpl = _with_bystander(rng, rng.choice(_TEMPLATES[rng.choice(relations)]))
            pair = (c, rng.choice((a, b)))
        else:
            tpl = rng.choice(_TEMPLATES[label])
            if label != UNKNOWN and rng.random() < 0.7:
                tpl = _with_bystander(rng, tpl)
            pair = (a, b)
        text = tpl.format(a=a, b=b, c=c, place=rng.choice(_PLACES), year=rng.choice(_YEARS),
                          event=rng.choice(_EVENTS), field=rng.choice(_FIELDS), org=rng.choice(_ORGS))
        key = (text, *sorted(pair))
        if key in seen:
            continue
        seen.add(key)
        e1, e2 = pair if rng.random() < 0.5 else pair[::-1]
        out.append({"text": text, "entity1": e1, "entity2": e2, "label": label})
    return out


# --- Patent-abstract classification (English, in the spirit of seed 002) ------

PATENT_LABELS = [
    "Human Necessities", "Performing Operations; Transporting", "Chemistry; Metallurgy", "Textiles; Paper",
    "Fixed Constructions", "Mechanical Engineering; Lighting; Heating; Weapons; Blasting", "Physics", "Electricity",
]
_PATENT_VOCAB: dict[str, tuple[list[str], list[str]]] = {
    # label: (things claimed, parts/effects)
    "Human Necessities": (["a wearable glucose monitor", "a dental implant", "a baby feeding bottle", "a hair dryer",
                           "an orthopedic insole", "a food preservation container"],
                          ["a skin-contact sensor", "a biocompatible coating", "an ergonomic handle",
                           "a nutrient compartment", "a disposable cartridge"]),
    "Performing Operations; Transporting": (["a conveyor system", "a robotic gripper", "a cargo trailer",
                                             "a sheet-metal press", "a bicycle gearbox", "a packaging machine"],
                                            ["a rotating clamp", "a load-bearing axle", "a pneumatic actuator",
                                             "a cutting die", "a tow hitch"]),
    "Chemistry; Metallurgy": (["a catalyst composition", "a corrosion-resistant alloy", "a polymer resin",
                               "an electrolytic refining process", "a fertilizer granule", "a steel annealing method"],
                              ["a nickel-chromium matrix", "an organic solvent", "a precipitation step",
                               "a heat-treated grain structure", "a zeolite carrier"]),
    "Textiles; Paper": (["a woven fabric", "a paper pulp treatment", "a yarn spinning device", "a nonwoven web",
                         "a cardboard laminate", "a knitting machine"],
                        ["interlaced fibers", "a bleaching bath", "a fiber tension roller", "a cellulose layer",
                         "a dye fixing agent"]),
    "Fixed Constructions": (["a bridge expansion joint", "a prefabricated wall panel", "a tunnel lining",
                             "a window frame", "a drainage culvert", "a roof truss"],
                            ["reinforced concrete", "a load-distributing beam", "a waterproof membrane",
                             "a foundation anchor", "a hinged sash"]),
    "Mechanical Engineering; Lighting; Heating; Weapons; Blasting": (
        ["a gas turbine blade", "an LED street lamp", "a heat exchanger", "a hydraulic pump", "a boiler burner",
         "a spring-loaded valve"],
        ["a cooling channel", "a reflector housing", "a ball bearing", "a combustion chamber", "a piston seal"]),
    "Physics": (["an optical interferometer", "a laser rangefinder", "a seismic sensor", "a spectrometer",
                 "an atomic clock", "a measuring gauge"],
                ["a diffraction grating", "a photodetector array", "a calibration mass", "a vacuum chamber",
                 "a signal processing unit"]),
    "Electricity": (["a lithium battery cell", "an image sensor device", "a power converter", "a printed circuit board",
                     "a wireless antenna", "a semiconductor transistor"],
                    ["a dual-gated charge storage region", "a copper winding", "a dielectric layer",
                     "a voltage regulator", "a doped substrate"]),
}
_PATENT_OPENERS = ["Disclosed is", "The invention provides", "An embodiment relates to", "A method of making",
                   "This disclosure describes", "Provided herein is"]
_PATENT_GLUE = ["comprising", "including", "having", "equipped with"]
_PATENT_CLOSERS = ["which reduces manufacturing cost.", "so that reliability is improved.",
                   "whereby energy consumption is lowered.", "allowing simple maintenance.",
                   "thereby increasing service life.", "which can be controlled remotely."]


def generate_patents(n: int, seed: int = 0) -> list[dict[str, str]]:
    """Patent-like abstracts with one of eight classes. One sentence in three
    also names a part typical of another class, so single keywords mislead."""
    rng = random.Random(seed)
    out, seen = [], set()
    while len(out) < n:
        label = rng.choice(PATENT_LABELS)
        things, parts = _PATENT_VOCAB[label]
        part = rng.choice(parts)
        if rng.random() < 0.33:
            other = rng.choice([lab for lab in PATENT_LABELS if lab != label])
            part2 = rng.choice(_PATENT_VOCAB[other][1])
        else:
            part2 = rng.choice([p for p in parts if p != part])
        text = (f"{rng.choice(_PATENT_OPENERS)} {rng.choice(things)} {rng.choice(_PATENT_GLUE)} {part} "
                f"and {part2}, {rng.choice(_PATENT_CLOSERS)}")
        if text in seen:
            continue
        seen.add(text)
        out.append({"text": text, "label": label})
    return out


# --- NER as generation (Chinese, in the spirit of seed 003) -------------------

NER_TYPES = ["人名", "地名", "机构名"]
_NER_ORGS = ["新华社", "清华大学", "中国银行", "人民日报社", "北京大学", "国家图书馆", "中国科学院", "上海博物馆",
             "复旦大学", "中央电视台", "华为公司", "南京图书馆"]
_NER_LOCS = _PLACES + ["黄山", "长江", "西湖", "云南", "新疆", "香港", "台湾", "东北"]
_NER_TEMPLATES = [
    "{per}昨天在{loc}会见了{org}的代表。",
    "据{org}报道，{loc}今年的降雨量明显增加。",
    "{per}毕业于{org}，后来一直在{loc}工作。",
    "{per}和{per2}一起去{loc}参观了展览。",
    "{org}在{loc}举办了一场学术报告会。",
    "记者从{org}获悉，{per}将出任新职务。",
    "{loc}的游客人数创下历史新高。",
    "{per}说，他小时候在{loc}长大。",
    "{org}与{org2}签署了合作协议。",
    "今天天气很好，我们决定出去散步。",
    "这本书的内容非常丰富，值得一读。",
    "会议讨论了明年的工作计划。",
]


def generate_ner(n: int, seed: int = 0) -> list[dict]:
    """Sentences with person, place and organisation names (and some with
    none); `entities` lists (entity, type) in order of appearance."""
    rng = random.Random(seed)
    out, seen = [], set()
    while len(out) < n:
        tpl = rng.choice(_NER_TEMPLATES)
        taken: set[str] = set()
        values = {"per": _name(rng, taken), "per2": _name(rng, taken), "loc": rng.choice(_NER_LOCS),
                  "org": rng.choice(_NER_ORGS)}
        values["org2"] = rng.choice([o for o in _NER_ORGS if o != values["org"]])
        kinds = {"per": "人名", "per2": "人名", "loc": "地名", "org": "机构名", "org2": "机构名"}
        text = tpl.format(**values)
        if text in seen:
            continue
        seen.add(text)
        slots = sorted((tpl.index("{" + k + "}"), k) for k in kinds if "{" + k + "}" in tpl)
        entities = [[values[k], kinds[k]] for _, k in slots]
        out.append({"text": text, "entities": entities})
    return out
